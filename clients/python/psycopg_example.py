"""Query InsightFlow with psycopg 3 (pip install "psycopg[binary]").

    INSIGHTFLOW_PASSWORD=... python clients/python/psycopg_example.py
"""
import os

import psycopg

dsn = (
    f"host=127.0.0.1 port={os.environ.get('INSIGHTFLOW_PG_PORT', '5433')} dbname=insightflow "
    f"user=admin password={os.environ['INSIGHTFLOW_PASSWORD']}"
)
with psycopg.connect(dsn) as conn:
    rows = conn.execute(
        "SELECT region, sum(revenue) AS revenue FROM sales WHERE order_date >= %s "
        "GROUP BY region ORDER BY revenue DESC",
        ("2025-01-01",),
    ).fetchall()
    for region, revenue in rows:
        print(f"{region:<6} {revenue:>12,.2f}")
