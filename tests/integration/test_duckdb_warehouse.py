import datetime as dt

import duckdb
import pytest

from shared.adapters.local.warehouse import DuckDBWarehouse
from shared.contract import TABLES, duckdb_ddl
from shared.ports import WarehouseSchemaError

pytestmark = pytest.mark.integration


def make_file(path, *, skip_table=None, drop_column=None):
    con = duckdb.connect(str(path))
    for table in TABLES.values():
        if table.name == skip_table:
            continue
        ddl = duckdb_ddl(table)
        if drop_column and drop_column[0] == table.name:
            ddl = ddl.replace(f"{drop_column[1]} VARCHAR NOT NULL, ", "")
        con.execute(ddl)
    return con


def fill(con):
    con.execute(
        "INSERT INTO invoices VALUES "
        "('I1','FV/1','receivable','C1','Acme','123','PL1','PLN',100.00,'2025-01-10','2025-01-24'),"
        "('I2','FV/2','receivable','C1','Acme','123','PL1','PLN',200.00,'2025-01-15','2025-01-29'),"
        "('I3','FV/3','receivable','C2','Beta',NULL,NULL,'PLN',300.00,'2025-02-20','2025-03-06'),"
        "('I4','FV/4','receivable','C2','Beta',NULL,NULL,'PLN',1000.00,'2025-01-05','2025-03-06'),"
        "('I5','FV/5','receivable','C2','Beta',NULL,NULL,'PLN',50.00,'2025-03-05','2025-03-06')"
    )
    con.execute(
        "INSERT INTO transfers VALUES "
        "('T1','2025-01-20','incoming',100.00,'PLN','ACME','PL1','FV/1'),"
        "('T2','2025-02-03','incoming',195.00,'PLN','ACME','PL1','FV 2'),"  # fee: settled
        "('T3','2025-02-10','incoming',400.00,'PLN','BETA',NULL,'part'),"  # partial of I4
        "('T4','2025-03-01','incoming',300.00,'PLN','BETA',NULL,NULL)"
    )
    con.execute(
        "INSERT INTO matches VALUES ('T1','I1',100.00,'2025-01-21 10:00:00'),"
        "('T2','I2',195.00,'2025-02-04 10:00:00'), ('T3','I4',400.00,'2025-02-11 09:00:00'),"
        "('T4','I3',300.00,'2025-03-02 09:00:00')"
    )


def test_reads_months_and_open_invoices(tmp_path):
    path = tmp_path / "w.duckdb"
    con = make_file(path)
    fill(con)
    con.close()
    warehouse = DuckDBWarehouse(path)
    warehouse.check_schema()
    assert warehouse.month_bounds() == ("2025-01", "2025-03")
    feb, mar = dt.date(2025, 2, 1), dt.date(2025, 3, 1)
    transfers = warehouse.transfers(feb, mar)
    assert transfers["transfer_id"].tolist() == ["T2", "T3"]
    assert transfers["amount"].dtype == "float64"
    open_feb = warehouse.open_invoices(feb, mar).set_index("invoice_id")
    # I1 was paid in January; I3 issued in February; I5 only in March
    assert sorted(open_feb.index) == ["I2", "I3", "I4"]
    assert open_feb.loc["I4", "open_amount"] == 1000.0
    open_mar = warehouse.open_invoices(mar, dt.date(2025, 4, 1)).set_index("invoice_id")
    # I2's 5.00 remainder (a fee) counts as settled; I4 stays open with what is left
    assert "I2" not in open_mar.index
    assert open_mar.loc["I4", "open_amount"] == 600.0
    assert "I5" in open_mar.index
    labels = warehouse.matches(feb, mar)
    assert labels["transfer_id"].tolist() == ["T2", "T3"]


def test_missing_table_and_column_are_named(tmp_path):
    path = tmp_path / "no_matches.duckdb"
    make_file(path, skip_table="matches").close()
    with pytest.raises(WarehouseSchemaError, match="missing table 'matches'"):
        DuckDBWarehouse(path).check_schema()
    path2 = tmp_path / "no_title.duckdb"
    con = make_file(path2)
    con.execute("ALTER TABLE transfers DROP COLUMN title")
    con.close()
    with pytest.raises(WarehouseSchemaError, match="'transfers' lacks column.*title"):
        DuckDBWarehouse(path2).check_schema()
    with pytest.raises(WarehouseSchemaError, match="does not exist"):
        DuckDBWarehouse(tmp_path / "absent.duckdb").check_schema()


def test_extra_columns_and_tables_do_not_matter(tmp_path):
    path = tmp_path / "w.duckdb"
    con = make_file(path)
    fill(con)
    con.execute("ALTER TABLE transfers ADD COLUMN bank_ref VARCHAR")
    con.execute("CREATE TABLE audit (x INT)")
    con.close()
    warehouse = DuckDBWarehouse(path)
    warehouse.check_schema()
    assert "bank_ref" not in warehouse.transfers(dt.date(2025, 1, 1), dt.date(2025, 4, 1)).columns
