"""Look before you run: print the records a Datagen config (or quickstart) would send.

python -m tools.datagen --config sources/orders.json --count 5
python -m tools.datagen --quickstart clickstream --count 3 --seed 42
python -m tools.datagen --list-quickstarts

Each line is ``<key>\\t<value>``: the message key (``null`` when the config has no
``schema.keyfield``) and the value as the generator makes one, JSON (an Avro source's value is
sent as the Avro encoding of that JSON). ``--start`` picks the absolute index of the first record
(``iteration`` annotations count from it). Records are made in pieces of 1,000, each seeded by its
first index: one piece is in memory at a time, whatever ``--count``. With ``--seed``, the first
piece is the records a tick of that seed sends from ``--start`` (at the time it runs), up to the
tick's size; the generator seeds each tick (and each 1 MB piece of one) anew, so later records
are another tick's, not these.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from shared.datagen.config import QUICKSTARTS, DatagenConfigError, quickstart_config, read_config
from shared.datagen.source import config_source
from shared.generator_ticks import PIECE_RECORDS, generate_messages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.datagen", description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--config", type=Path, help="a connector config, e.g. sources/orders.json")
    what.add_argument("--quickstart", choices=sorted(QUICKSTARTS), help="one of Datagen's quickstarts")
    what.add_argument("--list-quickstarts", action="store_true", help="list the quickstarts and their key fields")
    parser.add_argument("--count", type=int, default=5, help="records to print (default 5)")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: the config's random.seed, else random)")
    parser.add_argument("--start", type=int, default=0, help="absolute index of the first record (default 0)")
    args = parser.parse_args(argv)
    if args.list_quickstarts:
        for name, (_, keyfield) in sorted(QUICKSTARTS.items()):
            print(f"{name}\tkey: {keyfield}")
        return 0
    if args.count < 0 or args.start < 0:
        parser.error("--count and --start must be >= 0")
    if args.seed is not None and not -(2**63) <= args.seed < 2**63:  # as <SOURCE>_GENERATOR_SEED: no generator uses it
        parser.error("--seed must be a signed 64-bit integer, as <SOURCE>_GENERATOR_SEED")
    try:
        config = read_config(args.config) if args.config else quickstart_config(args.quickstart)
        source = config_source(config)  # refuses what only a record shows (options, defaults, a trial record)
    except (DatagenConfigError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else config.seed
    now = datetime.now(UTC)
    try:
        for start in range(args.start, args.start + args.count, PIECE_RECORDS):  # a piece in memory at a time
            count = min(PIECE_RECORDS, args.start + args.count - start)
            for message in generate_messages(source, count, now=now, seed=seed, start_index=start):
                print(f"{'null' if message.key is None else message.key}\t{message.value}")
    except BrokenPipeError:  # the reader stopped (| head): what it read was printed; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
