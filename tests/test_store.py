"""The dataset store: rows -> Parquet part files -> pandas / DuckDB, types intact."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from survey.store import (
    SCHEMAS,
    TABLES,
    DatasetWriter,
    TableWriter,
    discard_uncommitted,
    open_dataset,
    read_manifest,
    read_pandas,
    to_table,
    write_manifest,
)
from survey.store import writer as writer_module
from survey.store.manifest import ManifestError
from survey.store.schema import SCHEMA_VERSION, SchemaError

NOW = datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)

HOST_ROW = {
    "ip": "2001:db8::1", "port": 25, "status": "ok", "probe_status": "ok",
    "banner": "220 mx.example.test ESMTP <script>", "ehlo_capabilities": ["PIPELINING", "STARTTLS"],
    "ehlo_capabilities_tls": [], "starttls_offered": True, "tls_version": "TLSv1.3",
    "cipher_suite": "TLS_AES_256_GCM_SHA384", "versions_supported": ["TLSv1.2", "TLSv1.3"],
    "cipher_suites": [{"version": "TLSv1.2", "name": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                       "preference_order": 1},
                      {"version": "TLSv1.3", "name": "TLS_AES_128_GCM_SHA256",
                       "preference_order": None}],
    "server_preference": [{"version": "TLSv1.2", "enforced": True},
                          {"version": "TLSv1.3", "enforced": None}],
    "connections": 7, "probed_at": NOW,
}
DOMAIN_ROWS = [
    {"domain": "a.test", "rank": 1, "dns_status": "ok", "mx_kind": "mx", "mx_hosts": ["mx.a.test"],
     "mta_sts_txt_status": "valid", "mta_sts_max_age": 31557600, "mta_sts_mx_patterns": [],
     "tlsrpt_rua": ["mailto:r@a.test"], "probed_at": NOW},
    {"domain": "b.test", "rank": None, "dns_status": "nxdomain", "probed_at": NOW},
]
CERT_ROW = {"sha256": "ab" * 32, "der": b"\x30\x82\x00\x00", "subject": "CN=mx.a.test",
            "issuer": "CN=Test CA", "san_dns": ["mx.a.test"], "not_before": NOW,
            "not_after": NOW, "key_type": "EC", "key_bits": 256,
            "signature_algorithm": "ecdsa-with-SHA256", "self_signed": False, "probed_at": NOW}
MX_ROW = {"domain": "a.test", "mx_host": "mx.a.test", "preference": 10, "ip": "2001:db8::1",
          "port": 25, "cert_trusted": True, "cert_time_valid": False, "cert_name_match": None,
          "chain_sha256": ["ab" * 32], "probed_at": NOW}


def write_sample(scan_dir, batch_rows=1):
    with DatasetWriter(scan_dir, batch_rows=batch_rows) as w:
        for row in DOMAIN_ROWS:
            w.write("domains", row)
        w.write("mx", MX_ROW)
        w.write("hosts", HOST_ROW)
        w.write("certs", CERT_ROW)
    return w


def test_every_table_declares_its_name_and_schema_version():
    assert set(TABLES) == {"domains", "mx", "hosts", "certs"}
    for name, schema in SCHEMAS.items():
        assert schema.metadata[b"survey.table"] == name.encode()
        assert schema.metadata[b"survey.schema_version"] == SCHEMA_VERSION.encode()
        assert "probed_at" in schema.names


def test_part_files_carry_the_declared_schema(tmp_path):
    write_sample(tmp_path)
    for table in TABLES:
        parts = sorted((tmp_path / table).glob("*.parquet"))
        assert parts, table
        assert pq.read_schema(parts[0]) == SCHEMAS[table]
        assert pq.read_schema(parts[0]).metadata[b"survey.schema_version"] == b"1"


def test_pandas_round_trip_keeps_types_nulls_and_empty_lists(tmp_path):
    write_sample(tmp_path)
    domains = read_pandas(tmp_path, "domains").set_index("domain")
    assert str(domains["rank"].dtype) == "Int64"
    assert domains.loc["a.test", "rank"] == 1
    assert domains.loc["b.test", "rank"] is pd.NA
    assert list(domains.loc["a.test", "mta_sts_mx_patterns"]) == []  # measured, none
    assert domains.loc["b.test", "mta_sts_mx_patterns"] is None      # not measured
    assert domains.loc["a.test", "mta_sts_max_age"] == 31557600
    hosts = read_pandas(tmp_path, "hosts")
    assert hosts.loc[0, "ip"] == "2001:db8::1" and hosts.loc[0, "connections"] == 7
    assert hosts.loc[0, "banner"] == "220 mx.example.test ESMTP <script>"
    assert list(hosts.loc[0, "cipher_suites"])[1] == {
        "version": "TLSv1.3", "name": "TLS_AES_128_GCM_SHA256", "preference_order": None}
    assert hosts.loc[0, "probed_at"] == NOW
    mx = read_pandas(tmp_path, "mx")
    assert str(mx["cert_name_match"].dtype) == "boolean"
    assert not mx.loc[0, "cert_time_valid"] and mx.loc[0, "cert_trusted"]
    assert read_pandas(tmp_path, "certs").loc[0, "der"] == CERT_ROW["der"]


def test_duckdb_reads_the_same_values(tmp_path):
    write_sample(tmp_path)
    con = duckdb.connect()
    hosts = str(tmp_path / "hosts" / "*.parquet")
    row = con.execute(
        f"select ip, port, connections, cipher_suites[1].name, server_preference[2].enforced, "
        f"probed_at from read_parquet('{hosts}')").fetchone()
    assert row[:5] == ("2001:db8::1", 25, 7, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", None)
    assert row[5] == NOW
    types = {r[0]: r[1] for r in
             con.execute(f"describe select * from read_parquet('{hosts}')").fetchall()}
    assert types["port"] == "INTEGER" and types["starttls_offered"] == "BOOLEAN"
    assert types["probed_at"] == "TIMESTAMP WITH TIME ZONE"
    domains = str(tmp_path / "domains" / "*.parquet")
    assert con.execute(f"select count(*), count(rank) from read_parquet('{domains}')"
                       ).fetchone() == (2, 1)


def test_batches_become_numbered_parts_and_counts_add_up(tmp_path):
    writer = TableWriter(tmp_path / "domains", "domains", writer_id="w1", batch_rows=2)
    writer.write_many({"domain": f"d{i}.test", "dns_status": "ok", "probed_at": NOW}
                      for i in range(5))
    assert [p.name for p in writer.parts] == ["part-w1-000000.parquet", "part-w1-000001.parquet"]
    writer.close()
    assert writer.rows_written == 5 and len(writer.parts) == 3
    assert open_dataset(tmp_path, "domains").count_rows() == 5


def test_a_crash_while_writing_leaves_no_part_and_no_temporary(tmp_path, monkeypatch):
    def half_then_crash(table, fh, **kwargs):
        fh.write(b"PAR1 half a file")
        raise OSError("disk gone")

    monkeypatch.setattr(writer_module.pq, "write_table", half_then_crash)
    writer = TableWriter(tmp_path, "domains", batch_rows=1)
    with pytest.raises(OSError):
        writer.write({"domain": "a.test", "dns_status": "ok", "probed_at": NOW})
    assert list(tmp_path.iterdir()) == []


def test_the_reader_ignores_temporary_files(tmp_path):
    write_sample(tmp_path)
    (tmp_path / "domains" / ".part-x-000009.parquet.abcd.tmp").write_bytes(b"PAR1 half")
    assert open_dataset(tmp_path, "domains").count_rows() == 2


def test_the_writer_flushes_what_it_has_when_the_scan_crashes(tmp_path):
    with pytest.raises(RuntimeError):
        with DatasetWriter(tmp_path, batch_rows=1000) as w:
            w.write("domains", DOMAIN_ROWS[0])
            raise RuntimeError("scanner bug")
    assert open_dataset(tmp_path, "domains").count_rows() == 1


def test_a_missing_table_reads_as_empty_with_its_schema(tmp_path):
    frame = read_pandas(tmp_path, "certs")
    assert len(frame) == 0 and list(frame.columns) == SCHEMAS["certs"].names


def test_several_scans_read_as_one_union(tmp_path):
    write_sample(tmp_path / "s1")
    write_sample(tmp_path / "s2")
    assert open_dataset([tmp_path / "s1", tmp_path / "s2"], "domains").count_rows() == 4


@pytest.mark.parametrize(("row", "message"), [
    ({"domain": "a.test", "dns_status": "ok", "probed_at": NOW, "dns_stauts": "x"}, "unknown column"),
    ({"domain": "a.test", "dns_status": "ok", "probed_at": NOW, "rank": "first"}, "domains"),
    ({"domain": None, "dns_status": "ok", "probed_at": NOW}, "domains"),
])
def test_rows_that_break_the_schema_fail_loudly(row, message):
    with pytest.raises(SchemaError, match=message):
        to_table("domains", [row])


@pytest.mark.parametrize(("table", "row", "column", "value"), [
    ("hosts", {**HOST_ROW, "status": "greylisted"}, "status", "greylisted"),
    ("hosts", {**HOST_ROW, "status": "OK"}, "status", "OK"),
    ("hosts", {**HOST_ROW, "versions_supported": ["TLSv1.2", "TLSv1"]}, "versions_supported",
     "TLSv1"),
    ("hosts", {**HOST_ROW, "cipher_suites": [{"version": "TLS1.3", "name": "x"}]},
     "cipher_suites.version", "TLS1.3"),
    ("domains", {**DOMAIN_ROWS[1], "dns_status": "timeout"}, "dns_status", "timeout"),
    ("mx", {**MX_ROW, "tlsrpt_result_type": "sts_policy_invalid"}, "tlsrpt_result_type",
     "sts_policy_invalid"),
])
def test_a_value_outside_its_vocabulary_is_refused_naming_column_and_value(table, row, column,
                                                                          value):
    rows = [HOST_ROW if table == "hosts" else row] * 3 + [row]
    with pytest.raises(SchemaError) as caught:
        to_table(table, rows)
    assert f"column {column!r} holds {value!r}" in str(caught.value)


def test_vocabulary_members_and_their_strings_are_the_same_values(tmp_path):
    from survey.vocabulary import HostStatus, TlsVersion

    as_enum = to_table("hosts", [{**HOST_ROW, "status": HostStatus.RATE_LIMITED,
                                  "tls_version": TlsVersion.TLS12}])
    as_str = to_table("hosts", [{**HOST_ROW, "status": "rate_limited", "tls_version": "TLSv1.2"}])
    assert as_enum.equals(as_str)
    assert as_enum.column("status").to_pylist() == ["rate_limited"]


def test_the_vocabulary_check_costs_little_on_100k_rows():
    """Measured for issue 16: the check is per distinct value (Arrow compute), not per row."""
    import time

    from survey.store.schema import check_vocabularies

    table = to_table("hosts", [HOST_ROW] * 1000)
    big = pa.concat_tables([table] * 100)
    started = time.perf_counter()
    check_vocabularies("hosts", big)
    assert time.perf_counter() - started < 1.0


def test_unknown_table_is_a_clear_error(tmp_path):
    with pytest.raises(SchemaError, match="unknown table"):
        to_table("domain", [])
    with pytest.raises(ValueError, match="unknown table"):
        open_dataset(tmp_path, "host")


def test_manifest_round_trip_and_clear_errors(tmp_path):
    write_manifest(tmp_path, {"scan_id": "s1", "started": NOW, "counts": {"domains": 2}})
    manifest = read_manifest(tmp_path)
    assert manifest["scan_id"] == "s1" and manifest["counts"] == {"domains": 2}
    assert manifest["manifest_version"] == 1 and manifest["started"].startswith("2026-11-29")
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
    with pytest.raises(ManifestError, match="no manifest"):
        read_manifest(tmp_path / "nowhere")
    (tmp_path / "manifest.json").write_text("{half")
    with pytest.raises(ManifestError, match="unreadable"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps([1]))
    with pytest.raises(ManifestError, match="not a JSON object"):
        read_manifest(tmp_path)


def test_struct_types_are_explicit():
    hosts = SCHEMAS["hosts"]
    assert hosts.field("cipher_suites").type == pa.list_(pa.struct([
        ("version", pa.string()), ("name", pa.string()), ("preference_order", pa.int32())]))
    assert hosts.field("port").type == pa.int32()
    assert not hosts.field("ip").nullable


def test_a_batch_commits_all_tables_with_the_domains_part_last(tmp_path, monkeypatch):
    order = []
    real = writer_module.write_part

    def spy(directory, name, table, rows):
        order.append(table)
        return real(directory, name, table, rows)

    monkeypatch.setattr(writer_module, "write_part", spy)
    writer = DatasetWriter(tmp_path, writer_id="w", batch_rows=100)
    writer.write("hosts", HOST_ROW)
    writer.write("mx", MX_ROW)
    writer.flush()
    assert order == ["mx", "hosts", "domains"]       # an empty domains part commits the batch
    assert (tmp_path / "domains" / "part-w-000000.parquet").exists()
    assert writer.counts() == {"domains": 0, "mx": 1, "hosts": 1, "certs": 0}


def test_uncommitted_batches_are_discarded_before_a_resume(tmp_path):
    writer = DatasetWriter(tmp_path, writer_id="w", batch_rows=100)
    writer.write("domains", DOMAIN_ROWS[0])
    writer.write("mx", MX_ROW)
    writer.flush()
    # A crash between the mx part and the domains part of the second batch:
    writer_module.write_part(tmp_path / "mx", "part-w-000001.parquet", "mx", [MX_ROW])
    (tmp_path / "hosts").mkdir(exist_ok=True)
    (tmp_path / "hosts" / ".part-w-000001.parquet.ab12.tmp").write_bytes(b"half")
    removed = discard_uncommitted(tmp_path)
    assert sorted(p.name for p in removed) == [".part-w-000001.parquet.ab12.tmp",
                                               "part-w-000001.parquet"]
    assert open_dataset(tmp_path, "mx").count_rows() == 1
    assert open_dataset(tmp_path, "domains").count_rows() == 1


WITHOUT_PANDAS = """
import datetime
import sys
from survey.store import DatasetWriter, read_pandas
from survey.store.writer import pandas_unloaded

host = {row!r}
with pandas_unloaded():
    with DatasetWriter(sys.argv[1], batch_rows=1) as writer:
        writer.write("hosts", host)
    print("loaded while writing:", "pandas" in sys.modules)
    try:
        import pandas
    except ModuleNotFoundError:
        print("refused inside")
print("read after:", read_pandas(sys.argv[1], "hosts")["connections"].tolist())
"""


def test_a_scan_writes_its_rows_without_loading_pandas(tmp_path):
    code = WITHOUT_PANDAS.format(row=HOST_ROW)
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "scan")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["loaded while writing: False", "refused inside",
                                          "read after: [7]"]
