"""The rules of compare with DuckDB: load the CSV into a table named history, run each rule.
usage: duckdb_rules.py DATA.csv ID_COLUMN RULE.sql..."""
import json
import sys
import time

import duckdb

data, id_column, *rules = sys.argv[1:]
start = time.perf_counter()
con = duckdb.connect()
con.execute(f"CREATE TABLE history AS SELECT * FROM read_csv('{data}')")
loaded = time.perf_counter() - start
sizes = []
rules_start = time.perf_counter()
for rule in rules:
    sql = open(rule).read().strip().rstrip(";")
    sizes.append(con.execute(f"SELECT count(DISTINCT {id_column}) FROM ({sql})").fetchone()[0])
ran = time.perf_counter() - rules_start
print(json.dumps({"load_s": loaded, "rules_s": ran, "total_s": loaded + ran, "audience_sizes": sizes}))
