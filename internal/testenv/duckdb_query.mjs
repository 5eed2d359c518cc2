// Reads Parquet files with DuckDB, an engine independent of the writer.
// Usage: node query.mjs '{"name": "SELECT ... FROM read_parquet(...)", ...}'
// Prints {"name": [rows as JSON objects], ...}.
import { DuckDBInstance } from '@duckdb/node-api';

const queries = JSON.parse(process.argv[2]);
const conn = await (await DuckDBInstance.create(':memory:')).connect();
const out = {};
for (const [name, sql] of Object.entries(queries)) {
  const reader = await conn.runAndReadAll(sql);
  out[name] = reader.getRowObjectsJson();
}
console.log(JSON.stringify(out));
