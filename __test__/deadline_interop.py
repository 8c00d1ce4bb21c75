"""Deadline Cloud's own job-attachments code, driven by the interop tests (job-attachments.test.mjs).

Reads one JSON request on stdin, writes one JSON answer on stdout. The S3 endpoint and credentials come from the
environment (AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, ...), as boto3 reads them.

  {"cmd": "prepare", ...}  what Deadline's submitter makes of a job's paths: its asset roots and their manifests
  {"cmd": "sync", ...}     what Deadline's worker downloads from an `attachments` object (AssetSync.sync_inputs)
"""

import json
import sys
import warnings
from pathlib import Path

import boto3

import deadline.job_attachments._aws.aws_clients as aws_clients

# Deadline asks STS for the account id to send as the expected bucket owner; the local server has no STS.
aws_clients.get_account_id = lambda session=None: None

from deadline.job_attachments.asset_manifests import HashAlgorithm, hash_data  # noqa: E402
from deadline.job_attachments.asset_sync import AssetSync  # noqa: E402
from deadline.job_attachments.exceptions import MisconfiguredInputsError  # noqa: E402
from deadline.job_attachments.models import (  # noqa: E402
    Attachments,
    FileSystemLocation,
    FileSystemLocationType,
    JobAttachmentS3Settings,
    ManifestProperties,
    StorageProfile,
    StorageProfileOperatingSystemFamily,
)
from deadline.job_attachments.upload import S3AssetManager, S3AssetUploader  # noqa: E402


def storage_profile(locations):
    if not locations:
        return None
    return StorageProfile(
        storageProfileId="sp-test",
        displayName="test",
        osFamily=StorageProfileOperatingSystemFamily.LINUX,
        fileSystemLocations=[
            FileSystemLocation(name=l["name"], path=l["path"], type=FileSystemLocationType(l["type"]))
            for l in locations
        ],
    )


def prepare(req):
    settings = JobAttachmentS3Settings(s3BucketName=req["bucket"], rootPrefix=req["rootPrefix"])
    manager = S3AssetManager(
        farm_id=req["farmId"], queue_id=req["queueId"], job_attachment_settings=settings, session=boto3.Session()
    )
    try:
        group = manager.prepare_paths_for_upload(
            input_paths=req["inputs"],
            output_paths=req["outputs"],
            referenced_paths=req["references"],
            storage_profile=storage_profile(req.get("locations")),
            require_paths_exist=req.get("requirePathsExist", False),
        )
    except MisconfiguredInputsError as e:
        return {"error": str(e)}
    _, roots = manager.hash_assets_and_create_manifest(
        group.asset_groups, group.total_input_files, group.total_input_bytes, hash_cache_dir=req["hashCacheDir"]
    )
    out = []
    for r in roots:
        entry = {
            "rootPath": r.root_path,
            "fileSystemLocationName": r.file_system_location_name,
            "outputRelativeDirectories": [str(Path(p).relative_to(r.root_path)) for p in r.outputs],
            "manifest": None,
        }
        if r.asset_manifest:
            _, data, name = S3AssetUploader._gather_upload_metadata(
                r.asset_manifest, Path(r.root_path), "input", r.file_system_location_name
            )
            entry.update(
                manifest=data.decode("utf-8"),
                manifestName=name,
                manifestHash=hash_data(data, HashAlgorithm.XXH128),
            )
        out.append(entry)
    return out


def sync(req):
    settings = JobAttachmentS3Settings(s3BucketName=req["bucket"], rootPrefix=req["rootPrefix"])
    attachments = Attachments(
        manifests=[ManifestProperties.from_dict(m) for m in req["attachments"]["manifests"]],
        fileSystem=req["attachments"]["fileSystem"],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        summary, rules = AssetSync(farm_id=req["farmId"], boto3_session=boto3.Session()).sync_inputs(
            s3_settings=settings,
            attachments=attachments,
            queue_id=req["queueId"],
            job_id="job-interop",
            session_dir=Path(req["sessionDir"]),
        )
    return {"files": summary.processed_files, "bytes": summary.processed_bytes, "rules": rules}


if __name__ == "__main__":
    request = json.load(sys.stdin)
    answer = {"prepare": prepare, "sync": sync}[request["cmd"]](request)
    json.dump(answer, sys.stdout)
