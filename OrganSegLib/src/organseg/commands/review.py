"""`organseg review PATH`: check and correct a `segment` or `batch` result in the browser (the `[web]` extra), or
segment a CT there first (`organseg review CT -o OUT`)."""
from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from pathlib import Path

from organseg.errors import InputError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("review", help="review and correct results in the browser (needs organseg[web])")
    p.add_argument("path", type=Path, metavar="PATH",
                   help="a `segment` or `batch` output folder, or a CT (image file or DICOM folder) with -o")
    p.add_argument("-o", "--output", type=Path,
                   help="for a CT: the folder the page writes its results into (opened as they are if it already "
                        "holds this CT's results)")
    p.add_argument("--port", type=int, default=8080, help="port to serve on (default 8080; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (default 127.0.0.1, this machine only; another exposes the review)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.set_defaults(func=run)


def free_port(host: str, port: int) -> int:
    """`port` if it can be bound on `host` (any free port for 0); InputError naming the port otherwise."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no clash
        try:
            probe.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise InputError(f"port {port} on {host} is in use (another review or server?); choose another "
                                 "with --port, or --port 0 for any free one") from None
            raise InputError(f"--host {host} --port {port}: cannot serve there ({err.strerror})") from None
        return probe.getsockname()[1]


def review_cases(path: Path, output: Path | None) -> tuple[Path, list]:
    """The folder the review writes into and its cases: PATH's results, or the CT PATH segmented into OUTPUT."""
    from organseg.ct.read import read_ct
    from organseg.review.cases import STATS, SUMMARY, ct_case, find_cases

    if output is None:
        if path.is_file():
            raise InputError(f"{path}: a CT without results; give -o OUT, the folder the page writes its results "
                             "into")
        return path, find_cases(path)
    if path.is_dir() and any((path / name).exists() for name in (STATS, SUMMARY)):
        raise InputError(f"{path}: holds results already; review them with `organseg review {path}` (no -o)")
    read_ct(path)  # a file that is no CT is refused here, in one line, not on the page
    case = ct_case(path, output)
    if not case.segmented:
        from organseg.results.folder import check_writable
        check_writable(output)
    return output, [case]


def run(args: argparse.Namespace) -> int:
    root, cases = review_cases(args.path, args.output)
    if args.host not in LOCAL_HOSTS:
        print(f"warning: --host {args.host} exposes the review to every machine that can reach this one: the CTs, "
              "the masks and Save, with no login", file=sys.stderr)
    port = free_port(args.host, args.port)
    try:
        from trame.app import get_server

        from organseg.review.app import ReviewApp
    except ImportError as err:
        raise InputError(f"`organseg review` needs the web extra ({(err.name or 'trame').split('.')[0]} is missing): "
                         "pip install \"organseg[web]\"") from None
    os.environ["TRAME_ARGS"] = ""  # trame would otherwise read its options from organseg's command line
    server = get_server("organseg-review", client_type="vue3")
    ReviewApp(root.resolve(), cases, server)
    url = f"http://{'[' + args.host + ']' if ':' in args.host else args.host}:{port}/"
    server.controller.on_server_ready.add(lambda **_: print(f"organseg review: {len(cases)} case(s) at {url} "
                                                           "(Ctrl-C to stop)", flush=True))
    server.start(port=port, host=args.host, open_browser=args.open, show_connection_info=False)
    return 0
