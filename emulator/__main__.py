"""`python -m emulator`: the Microsoft cloud emulator alone."""
from __future__ import annotations

import argparse

from .server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443, help="0 picks a free port (see --ready-file)")
    parser.add_argument("--ca-out", help="write the CA certificate (PEM) here")
    parser.add_argument("--state", help="restore the world from this file at start, save it at shutdown")
    parser.add_argument("--san", action="append", default=[], help="extra host name for the certificate")
    parser.add_argument("--ready-file", help="write {url, port, ca_path} here once listening")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.ca_out, args.state, extra_names=args.san, ready_file=args.ready_file,
          access_log=args.access_log)


if __name__ == "__main__":
    main()
