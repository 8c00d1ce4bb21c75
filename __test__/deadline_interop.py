"""Deadline Cloud's own job-attachments code, driven by the interop tests (job-attachments.test.mjs).

Reads one JSON request on stdin, writes one JSON answer on stdout. The S3 endpoint and credentials come from the
environment (AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, ...), as boto3 reads them.

  {"cmd": "prepare", ...}  what Deadline's submitter makes of a job's paths: its asset roots and their manifests
  {"cmd": "sync", ...}     what Deadline's worker downloads from an `attachments` object (AssetSync.sync_inputs)
  {"cmd": "outputs", ...}  a session action's outputs written and stored by Deadline's worker (AssetSync.sync_outputs)
  {"cmd": "download_outputs", ...}  a job's outputs brought back by Deadline's OutputDownloader, into given roots
  {"cmd": "hash", ...}     files hashed by Deadline's submitter with a hash cache: how many it read, how many not
  {"cmd": "checked", ...}  which content keys Deadline's S3 check cache vouches for
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
from deadline.job_attachments._utils import _get_unique_dest_dir_name  # noqa: E402
from deadline.job_attachments.asset_sync import AssetSync  # noqa: E402
from deadline.job_attachments.download import OutputDownloader  # noqa: E402
from deadline.job_attachments.models import FileConflictResolution  # noqa: E402
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
    attachments = attachments_of(req)
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


def attachments_of(req):
    return Attachments(
        manifests=[ManifestProperties.from_dict(m) for m in req["attachments"]["manifests"]],
        fileSystem=req["attachments"].get("fileSystem", "COPIED"),
    )


def outputs(req):
    """Writes `files` ({rootPath: {relative path: text}}) where the worker's session keeps each root, then lets
    Deadline's worker code find and store them as one session action's outputs."""
    session_dir = Path(req["sessionDir"])
    for root, files in req["files"].items():
        for rel, text in files.items():
            path = session_dir / _get_unique_dest_dir_name(root) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    settings = JobAttachmentS3Settings(s3BucketName=req["bucket"], rootPrefix=req["rootPrefix"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        summary = AssetSync(farm_id=req["farmId"], boto3_session=boto3.Session()).sync_outputs(
            s3_settings=settings,
            attachments=attachments_of(req),
            queue_id=req["queueId"],
            job_id=req["jobId"],
            step_id=req["stepId"],
            task_id=req["taskId"],
            session_action_id=req["sessionActionId"],
            start_time=req["startTime"],
            session_dir=session_dir,
        )
    return {"files": summary.processed_files + summary.skipped_files}


def download_outputs(req):
    settings = JobAttachmentS3Settings(s3BucketName=req["bucket"], rootPrefix=req["rootPrefix"])
    downloader = OutputDownloader(
        s3_settings=settings,
        farm_id=req["farmId"],
        queue_id=req["queueId"],
        job_id=req["jobId"],
        step_id=req.get("stepId"),
        session=boto3.Session(),
    )
    for root, local in req["rootMap"].items():
        downloader.set_root_path(root, local)
    downloader.download(file_conflict_resolution=FileConflictResolution.CREATE_COPY)
    return {"roots": sorted(downloader.get_paths_by_root().keys())}


def hash_files(req):
    manager = S3AssetManager(
        farm_id="farm-x",
        queue_id="queue-x",
        job_attachment_settings=JobAttachmentS3Settings(s3BucketName="b", rootPrefix="R"),
        session=boto3.Session(),
    )
    group = manager.prepare_paths_for_upload(input_paths=req["inputs"], output_paths=[], referenced_paths=[])
    stats, _ = manager.hash_assets_and_create_manifest(
        group.asset_groups, group.total_input_files, group.total_input_bytes, hash_cache_dir=req["hashCacheDir"]
    )
    return {"hashed": stats.processed_files, "unchanged": stats.skipped_files}


def checked(req):
    from deadline.job_attachments.caches import S3CheckCache

    with S3CheckCache(req["cacheDir"]) as cache:
        return [cache.get_entry(f"{req['bucket']}/{key}") is not None for key in req["keys"]]


if __name__ == "__main__":
    request = json.load(sys.stdin)
    commands = {
        "prepare": prepare,
        "sync": sync,
        "outputs": outputs,
        "download_outputs": download_outputs,
        "hash": hash_files,
        "checked": checked,
    }
    answer = commands[request["cmd"]](request)
    json.dump(answer, sys.stdout)
