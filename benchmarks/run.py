"""InsightFlow benchmarks: each suite runs InsightFlow and its peers in the same run and
prints ratios (absolute times on shared machines drift; ratios much less).

    benchmarks/run.sh tpch --scale 1 --runs 3
    benchmarks/run.sh wire --scale 1
    benchmarks/run.sh concurrency --clients 1,10,50,100
    benchmarks/run.sh ingest --scale 1
    benchmarks/run.sh functions --rows 10000000

Suites:
  tpch         the 22 TPC-H queries: InsightFlow over pgwire and Flight SQL, embedded
               DataFusion, DuckDB.
  wire         all of lineitem: InsightFlow pgwire text/binary and Flight SQL against
               PostgreSQL's own server.
  concurrency  many clients running small aggregates: InsightFlow against PostgreSQL.
  ingest       lineitem as CSV into a table: CREATE TABLE AS, COPY FROM STDIN and Flight
               bulk ingest, against DuckDB read_csv and PostgreSQL COPY.
  functions    profile() and quality() over a wide table, against DuckDB's SUMMARIZE.

Results go to benchmarks/results/<suite>.json and .md (the README quotes the tables).
"""

import argparse
import datetime
import json
import sys
from pathlib import Path

from harness import ROOT, machine

RESULTS = ROOT / "benchmarks" / "results"


def markdown(report: dict) -> str:
    lines = [f"### {report['title']}", "",
             f"{report['machine']}, {report['date']}; {report['peers']}.", "",
             "| " + " | ".join(report["columns"]) + " |",
             "|---" + "|---:" * (len(report["columns"]) - 1) + "|"]
    for row in report["rows"]:
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=["tpch", "wire", "concurrency", "ingest", "functions"])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measure (median)")
    parser.add_argument("--scale", type=float, default=1, help="TPC-H scale factor (tpch, wire, concurrency, ingest)")
    parser.add_argument("--queries", help="tpch: comma-separated query numbers (default all 22)")
    parser.add_argument("--python-rows", action="store_true", help="wire: also time psycopg fetchall()")
    parser.add_argument("--clients", default="1,10,16,50,100", help="concurrency: client counts")
    parser.add_argument("--seconds", type=float, default=10, help="concurrency: seconds per client count")
    parser.add_argument("--rows", type=int, default=10_000_000, help="functions: rows of the wide table")
    parser.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "insightflow")
    args = parser.parse_args()
    if not args.binary.exists():
        sys.exit(f"{args.binary} is missing: build it with `cargo build --release` (benchmarks use the release build)")
    suite = __import__(f"suite_{args.suite}")
    report = suite.run(args)
    report["machine"] = machine()
    report["date"] = datetime.date.today().isoformat()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.suite}.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report)
    (RESULTS / f"{args.suite}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
