"""Uploads one file to a tus server with tuspy, as an application would.

    python tuspy_upload.py --endpoint URL --token TOKEN --file PATH
        [--chunk-size N] [--checksum] [--stop-at N] [--upload-url URL]
        [--filename NAME] [--filetype TYPE]

--stop-at stops once the server holds that many bytes (a client that goes
away); --upload-url resumes an upload from its URL, from the offset the
server reports. Prints one JSON object on stdout: the upload URL, the offset
this run started from and ended at, and the size and Upload-Checksum of
every PATCH it sent.
The claimcheck test suite (tests/tests/suite/tus/clients.rs) runs it.
"""

import argparse
import json
import os
import sys

from tusclient.client import TusClient
from tusclient.uploader import Uploader


class CountingUploader(Uploader):
    """tuspy's own Uploader; only records, for each PATCH, what it moved the
    offset by and the Upload-Checksum it carried."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.patches = []
        self.checksums = []

    def upload_chunk(self):
        before = self.offset
        super().upload_chunk()
        self.patches.append(self.offset - before)
        self.checksums.append(self.request._request_headers.get("upload-checksum"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--checksum", action="store_true")
    parser.add_argument("--stop-at", type=int, default=None)
    parser.add_argument("--upload-url", default=None)
    parser.add_argument("--filename", default=None)
    parser.add_argument("--filetype", default="application/octet-stream")
    args = parser.parse_args()

    client = TusClient(args.endpoint, headers={"Authorization": f"Bearer {args.token}"})
    options = {
        "file_path": args.file,
        "client": client,
        "metadata": {
            "filename": args.filename or os.path.basename(args.file),
            "filetype": args.filetype,
        },
        "upload_checksum": args.checksum,
    }
    if args.chunk_size is not None:
        options["chunk_size"] = args.chunk_size
    if args.upload_url is not None:
        # tuspy asks the server for the offset (HEAD) when given a URL.
        options["url"] = args.upload_url
    uploader = CountingUploader(**options)
    start_offset = uploader.offset
    uploader.upload(stop_at=args.stop_at)
    json.dump(
        {
            "url": uploader.url,
            "size": uploader.get_file_size(),
            "start_offset": start_offset,
            "offset": uploader.offset,
            "patches": uploader.patches,
            "checksums": uploader.checksums,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
