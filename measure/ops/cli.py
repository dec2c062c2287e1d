"""`python -m measure`: the command line.

    sign          print the string to sign, the signature and the three mat-* headers
    verify        check a signature the way the Measurement API does
    send          build, sign and send one event; print the outcome
    link          encrypt / decrypt a ckey+data payload, build a click or impression link
    explain       how the TUNE tracking engine would resolve an event (against your definitions)
    sandbox       a local stand-in for the Measurement API
    dev           the whole pipeline on this machine (what `make run` runs)
    backfill      validate and publish a CSV / NDJSON file of events
    dead-letters  list, show, replay or purge what the dead-letter subscription holds
    status        where is my event: received, published, each attempt with TUNE's log_id, dead letter
    replay        re-deliver what measure-events held between two times (seek on the replay subscription)

Commands that own a module (sandbox, dev, backfill, dead-letters, status, replay) parse their own arguments;
everything is imported only when its command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

DELEGATED = {
    "sandbox": ("measure.dev.sandbox", "a local stand-in for the Measurement API"),
    "dev": ("measure.dev.devstack", "run the whole pipeline locally: emulator, functions, sandbox (make run)"),
    "backfill": ("measure.ops.backfill", "validate and publish a CSV or NDJSON file of events"),
    "dead-letters": ("measure.ops.deadletters", "list, show, replay or purge dead letters"),
    "status": ("measure.ops.status", "where is my event: its timeline from the logs (received, attempts, log_id)"),
    "replay": ("measure.ops.replay", "re-deliver what measure-events held in a time window (Pub/Sub seek)"),
}


def _params(pairs: Sequence[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise SystemExit(f"measure: parameter {pair!r} must be KEY=VALUE")
        if key in params:
            raise SystemExit(f"measure: parameter {key!r} given twice; each may have exactly one value")
        params[key] = value
    return params


def _secret(value: str | None, env: str, flag: str) -> str:
    value = value or os.environ.get(env)
    if not value:
        raise SystemExit(f"measure: {flag} is required (or set {env})")
    return value


def cmd_sign(args) -> int:
    from measure.tune import signing

    host, uri = signing.request_target(args.url)
    params = _params(args.param)
    post_params = signing.encode_post_params(params) if args.method == "POST" else ""
    if params and args.method == "GET":
        raise SystemExit("measure: GET requests sign no parameters; put them in the --url query string")
    private_key = _secret(args.private_key, "MEASURE_PRIVATE_KEY", "--private-key")
    timestamp = args.timestamp or str(int(__import__("time").time()))
    to_sign = signing.string_to_sign(args.method, host, uri, timestamp, post_params)
    signature = signing.sign(private_key, to_sign)
    print("string to sign:")
    for line in to_sign.split("\n"):
        print(f"  {line}")
    print(f"signature: {signature}")
    print("headers:")
    consumer_key = args.consumer_key or os.environ.get("MEASURE_CONSUMER_KEY") or "<consumer key>"
    for name, value in signing.signing_headers(consumer_key, signature, timestamp).items():
        print(f"  {name}: {value}")
    return 0


def cmd_verify(args) -> int:
    from measure.tune import signing

    host, uri = signing.request_target(args.url)
    post_params = signing.encode_post_params(_params(args.param)) if args.method == "POST" else ""
    private_key = _secret(args.private_key, "MEASURE_PRIVATE_KEY", "--private-key")
    now = float(args.timestamp) if args.ignore_time else None
    try:
        signing.verify_signature(private_key, args.method, host, uri, args.timestamp, args.signature, post_params,
                                 tolerance=args.tolerance, now=now)
    except signing.SignatureVerificationError as exc:
        print(f"invalid: {exc}")
        return 1
    print("valid")
    return 0


def cmd_send(args) -> int:
    import time

    from measure import config as config_module
    from measure import events
    from measure.tune import params as tune_params
    from measure.tune.client import MeasurementClient

    try:
        config = config_module.load()
    except config_module.ConfigError as exc:
        raise SystemExit(f"measure: {exc}") from None
    raw = json.loads(args.json) if args.json else {}
    for field in ("user_id", "event_name", "ip", "time_stamp", "platform", "storefront", "event_id"):
        value = getattr(args, field)
        if value is not None:
            raw[field] = value
    raw.setdefault("time_stamp", str(int(time.time())))
    raw.update(_params(args.param))
    try:
        (event,) = events.validate([raw], site_ids=config.site_ids, max_age=config.event_max_age)
    except events.InvalidEvents as exc:
        for problem in exc.problems:
            print(f"invalid: {problem.field}: {problem.problem}", file=sys.stderr)
        return 1
    params = tune_params.to_params(event, advertiser_id=config.advertiser_id,
                                   site_id=config.site_id(event.platform, event.storefront))  # type: ignore[arg-type]  # validated
    consumer_key = _secret(args.consumer_key or config.consumer_key, "MEASURE_CONSUMER_KEY", "--consumer-key")
    private_key = _secret(args.private_key or config.private_key, "MEASURE_PRIVATE_KEY", "--private-key")
    client = MeasurementClient(args.endpoint or config.endpoint, lambda: (consumer_key, private_key))
    outcome = client.deliver(params)
    print(json.dumps({"event_id": event.event_id, "endpoint": client.endpoint, **outcome.to_log()}, indent=2))
    return 0 if outcome.kind.done else 1


def cmd_link(args) -> int:
    from measure.tune import links

    try:
        if args.link_command == "encrypt":
            print(links.encrypt_data(_consumer(args), _private(args), _params(args.param)))
        elif args.link_command == "decrypt":
            decrypted = links.decrypt_data(_consumer(args), _private(args), args.data)
            print(json.dumps(decrypted, indent=2, ensure_ascii=False))
        else:
            needs_keys = bool(args.encrypt)
            print(links.build_link(
                args.kind, args.publisher_id, _params(args.param), encrypt=args.encrypt,
                consumer_key=_consumer(args) if needs_keys else None,
                private_key=_private(args) if needs_keys else None,
            ))
    except links.LinkError as exc:
        print(f"measure link: {exc}", file=sys.stderr)
        return 1
    return 0


def _consumer(args) -> str:
    return _secret(args.consumer_key, "MEASURE_CONSUMER_KEY", "--consumer-key")


def _private(args) -> str:
    return _secret(args.private_key, "MEASURE_PRIVATE_KEY", "--private-key")


def cmd_explain(args) -> int:
    from urllib.parse import parse_qsl

    from measure.ops import resolution

    text = args.event.strip()
    try:
        definitions = resolution.load_definitions(args.definitions) if args.definitions else []
        if text.startswith("{"):
            raw = json.loads(text)
            if not isinstance(raw, dict):
                raise ValueError("the event must be a JSON object")
            params = resolution.event_call(raw)
        else:
            params = dict(parse_qsl(text.lstrip("?&"), keep_blank_values=True))
        result = resolution.resolve(params, definitions)
    except (ValueError, OSError, resolution.ResolutionError, resolution.DefinitionsError) as exc:
        print(f"measure explain: {exc}", file=sys.stderr)
        return 2
    print(result.explain())
    return 1 if result.warnings and args.strict else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m measure",
                                     description="measure: deliver game events to the TUNE Measurement API.",
                                     epilog="Run 'python -m measure COMMAND --help' for a command's options.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_request_arguments(p):
        p.add_argument("--method", choices=["GET", "POST"], default="POST")
        p.add_argument("--url", default="https://engine.mobileapptracking.com/serve",
                       help="the full request URL (host and path, with the query string for GET)")
        p.add_argument("--private-key", help="the private key (default: $MEASURE_PRIVATE_KEY)")
        p.add_argument("param", nargs="*", metavar="KEY=VALUE", help="POST parameters, one value each")

    sign = sub.add_parser("sign", help="print the string to sign, the signature and the mat-* headers",
                          description="Sign a request exactly as the seed's Go GenerateSignature does.")
    add_request_arguments(sign)
    sign.add_argument("--consumer-key", help="shown in the mat-consumer-key header (default: $MEASURE_CONSUMER_KEY)")
    sign.add_argument("--timestamp", help="Unix seconds (default: now)")
    sign.set_defaults(run=cmd_sign)

    verify = sub.add_parser("verify", help="check a signature as the Measurement API would")
    add_request_arguments(verify)
    verify.add_argument("--timestamp", required=True, help="the mat-timestamp header")
    verify.add_argument("--signature", required=True, help="the mat-signature header")
    verify.add_argument("--tolerance", type=float, default=300, help="allowed clock skew in seconds")
    verify.add_argument("--ignore-time", action="store_true", help="check the signature only, not the clock")
    verify.set_defaults(run=cmd_verify)

    send = sub.add_parser("send", help="build, sign and send one event; print the outcome",
                          description="Reads MEASURE_* settings from the environment like the functions do.")
    send.add_argument("--json", help="the event as a JSON object (flags override its fields)")
    for field in ("user-id", "event-name", "ip", "time-stamp", "platform", "storefront", "event-id"):
        send.add_argument(f"--{field}", dest=field.replace("-", "_"))
    send.add_argument("--endpoint", help="override MEASURE_ENDPOINT (https, or http to loopback)")
    send.add_argument("--consumer-key")
    send.add_argument("--private-key")
    send.add_argument("param", nargs="*", metavar="KEY=VALUE", help="pass-through Measurement API parameters")
    send.set_defaults(run=cmd_send)

    link = sub.add_parser("link", help="encrypted ckey/data payloads and click/impression links")
    link_sub = link.add_subparsers(dest="link_command", required=True)
    for name, text in (("encrypt", "encrypt KEY=VALUE pairs into a data payload (lowercase hex)"),
                       ("decrypt", "decrypt a data payload back into its parameters"),
                       ("build", "build a click or impression TUNE link")):
        p = link_sub.add_parser(name, help=text)
        p.add_argument("--consumer-key", help="the ckey (default: $MEASURE_CONSUMER_KEY)")
        p.add_argument("--private-key", help="16, 24 or 32 bytes (default: $MEASURE_PRIVATE_KEY)")
        if name == "decrypt":
            p.add_argument("data", help="the hex payload")
        else:
            p.add_argument("param", nargs="*", metavar="KEY=VALUE")
        if name == "build":
            p.add_argument("--kind", choices=["click", "impression"], default="click")
            p.add_argument("--publisher-id", required=True)
            p.add_argument("--encrypt", action="append", default=[], metavar="KEY",
                           help="a parameter to carry encrypted in data (repeatable)")
    link.set_defaults(run=cmd_link)

    explain = sub.add_parser("explain", help="how TUNE would resolve an event against your event definitions")
    explain.add_argument("event", help='a webhook event as JSON (\'{"event_name": "login"}\') or a parameter '
                                       "string ('action=conversion&site_event_name=review_submitted')")
    explain.add_argument("--definitions", help="JSON file of the events configured in TUNE (id, name, type)")
    explain.add_argument("--strict", action="store_true", help="exit 1 when there are warnings")
    explain.set_defaults(run=cmd_explain)

    for name, (_, text) in DELEGATED.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        import importlib

        return importlib.import_module(DELEGATED[argv[0]][0]).main(argv[1:]) or 0
    args = build_parser().parse_args(argv)
    return args.run(args)
