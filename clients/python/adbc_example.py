"""Query InsightFlow over Arrow Flight SQL with ADBC
(pip install adbc-driver-flightsql pyarrow).

    INSIGHTFLOW_PASSWORD=... python clients/python/adbc_example.py
"""
import os

import adbc_driver_flightsql.dbapi as flight_sql

with flight_sql.connect(
    f"grpc://127.0.0.1:{os.environ.get('INSIGHTFLOW_FLIGHT_PORT', '50051')}",
    autocommit=True,
    db_kwargs={"username": "admin", "password": os.environ["INSIGHTFLOW_PASSWORD"]},
) as conn, conn.cursor() as cur:
    cur.execute("SELECT * FROM sales WHERE region = ? ORDER BY order_id LIMIT 5", parameters=("North",))
    print(cur.fetch_arrow_table())
