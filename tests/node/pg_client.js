// node-postgres against InsightFlow: connects with the PG* environment variables,
// runs a plain query, a parameterised one, an array parameter, a catalog listing and a
// bad query, and prints what it saw as JSON for the Python test to check.
const { Client, Pool } = require("pg");

async function main() {
  const client = new Client();
  await client.connect();
  const out = {};
  out.version = (await client.query("SELECT version()")).rows[0].version;
  out.regions = (await client.query(
    "SELECT region, count(*)::int AS n FROM sales GROUP BY region ORDER BY region")).rows;
  out.north = (await client.query(
    "SELECT count(*)::int AS n FROM sales WHERE region = $1 AND quantity >= $2", ["North", 3])).rows[0].n;
  out.any = (await client.query(
    "SELECT count(*)::int AS n FROM sales WHERE region = ANY($1)", [["North", "South"]])).rows[0].n;
  out.tables = (await client.query(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")).rows
    .map((r) => r.table_name);
  try {
    await client.query("SELECT * FROM no_such_table");
  } catch (e) {
    out.error = e.code;
  }
  out.after_error = (await client.query("SELECT 1::int AS one")).rows[0].one;
  await client.end();

  const pool = new Pool({ max: 3 });
  const counts = await Promise.all([1, 2, 3, 4, 5, 6].map(async (q) =>
    (await pool.query("SELECT count(*)::int AS n FROM sales WHERE quantity >= $1", [q])).rows[0].n));
  out.pool = counts;
  await pool.end();
  console.log(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
