"""One timed transfer with the AWS Common Runtime's S3 client (PyPI `awscrt`), the speed reference of the AWS SDKs.

    python bench/crt_transfer.py '<json config>'  -> prints one JSON line: { seconds, cpuSeconds, maxRssMiB, files, bytes }

Same contract as bench/transfer.mjs. 32 files in flight (meta requests), 8 MiB parts; the CRT splits big files
into parts and ranges itself, and reads and writes the files itself (send_filepath / recv_filepath). The listing
for downloads is a plain ListObjectsV2 through the same client.
"""

import json
import os
import resource
import sys
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

from awscrt import auth, http, io, s3

cfg = json.loads(sys.argv[1])
MIB = 1024 * 1024
FILES_IN_FLIGHT = 32
PART = 8 * MIB

endpoint = urllib.parse.urlparse(cfg["endpoint"])
host = endpoint.netloc
event_loops = io.EventLoopGroup(2)
bootstrap = io.ClientBootstrap(event_loops, io.DefaultHostResolver(event_loops))
credentials = auth.AwsCredentialsProvider.new_static(cfg["credentials"]["accessKeyId"], cfg["credentials"]["secretAccessKey"])
client = s3.S3Client(
    bootstrap=bootstrap,
    region=cfg["region"],
    tls_mode=s3.S3RequestTlsMode.DISABLED if endpoint.scheme == "http" else s3.S3RequestTlsMode.ENABLED,
    signing_config=s3.create_default_s3_signing_config(region=cfg["region"], credential_provider=credentials),
    part_size=PART,
    multipart_upload_threshold=PART,
    throughput_target_gbps=10.0,
)


def quote(key):
    return urllib.parse.quote(key, safe="/~")


def request(method, path, extra=()):
    headers = http.HttpHeaders([("Host", host), *extra])
    return http.HttpRequest(method, path, headers)


def list_keys(bucket, prefix):
    out, token = [], None
    while True:
        query = {"list-type": "2", "prefix": prefix}
        if token:
            query["continuation-token"] = token
        body = bytearray()
        done = client.make_request(
            type=s3.S3RequestType.DEFAULT,
            operation_name="ListObjectsV2",
            request=request("GET", f"/{bucket}?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}"),
            on_body=lambda chunk, **_: body.extend(chunk),
        )
        done.finished_future.result()
        root = ET.fromstring(bytes(body))
        ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
        for c in root.iter(f"{ns}Contents"):
            out.append((c.find(f"{ns}Key").text, int(c.find(f"{ns}Size").text)))
        token = root.findtext(f"{ns}NextContinuationToken")
        if not token:
            return out


def run_all(jobs):
    """Runs (make_request kwargs) jobs with FILES_IN_FLIGHT meta requests at a time."""
    slots = threading.Semaphore(FILES_IN_FLIGHT)
    errors, pending = [], []
    for kwargs in jobs:
        slots.acquire()
        if errors:
            break
        mr = client.make_request(**kwargs)
        future = mr.finished_future

        def done(f, _mr=mr):
            if f.exception():
                errors.append(f.exception())
            slots.release()

        future.add_done_callback(done)
        pending.append((mr, future))
    for _, f in pending:
        f.result()
    if errors:
        raise errors[0]


def upload():
    files, total = [], 0
    for dirpath, _, names in os.walk(cfg["localDir"]):
        for n in names:
            p = os.path.join(dirpath, n)
            files.append(p)
            total += os.path.getsize(p)
    jobs = []
    for p in files:
        key = cfg["prefix"] + os.path.relpath(p, cfg["localDir"]).replace(os.sep, "/")
        size = os.path.getsize(p)
        jobs.append(
            dict(
                type=s3.S3RequestType.PUT_OBJECT,
                request=request("PUT", f"/{cfg['bucket']}/{quote(key)}", [("Content-Length", str(size))]),
                send_filepath=p,
            )
        )
    run_all(jobs)
    return len(files), total


def download():
    objects = list_keys(cfg["bucket"], cfg["prefix"])
    jobs = []
    for key, _ in objects:
        dest = os.path.join(cfg["localDir"], key[len(cfg["prefix"]):])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        jobs.append(
            dict(
                type=s3.S3RequestType.GET_OBJECT,
                request=request("GET", f"/{cfg['bucket']}/{quote(key)}"),
                recv_filepath=dest,
            )
        )
    run_all(jobs)
    return len(objects), sum(size for _, size in objects)


r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
files, nbytes = upload() if cfg["direction"] == "upload" else download()
seconds = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
with open("/proc/self/status") as f:
    hwm = int(next(line for line in f if line.startswith("VmHWM")).split()[1])
print(
    json.dumps(
        {
            "files": files,
            "bytes": nbytes,
            "seconds": seconds,
            "cpuSeconds": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
            "maxRssMiB": hwm / 1024,
        }
    )
)
sys.stdout.flush()
os._exit(0)
