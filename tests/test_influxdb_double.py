"""The InfluxDB test double answers as InfluxDB OSS v2 does, driven by the real client library.

Every other test that talks to "InfluxDB" trusts this double, so these tests pin its behaviour:
statuses and error bodies, token scoping, line protocol rules, overwrite semantics, the Flux
subset, the fault switches, and conformance of the client's requests to the OpenAPI contract.
"""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from influxdb_client import BucketRetentionRules, InfluxDBClient, Permission, PermissionResource
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.authorization import Authorization
from influxdb_client.rest import ApiException

from tests.doubles.flux import FluxError, compile_query
from tests.doubles.influxdb import InfluxDBDouble, StoredPoint
from tests.doubles.line_protocol import (
    LineError,
    UInt,
    _parse_fast,
    _parse_slow,
    parse_batch,
    parse_line,
)

# Until tests/conftest.py registers the fixtures module as a plugin.

VERIFY_QUERY = (
    'from(bucket:"acme") |> range(start: 1754191200, stop: 1754278801) '
    '|> filter(fn: (r) => r._measurement == "electrical" and r.device_master_sn == "02001171" '
    'and r.campaign == "campaign1") |> count() |> group() |> sum()'
)


def client_for(double: InfluxDBDouble, token: str | None = None, **options) -> InfluxDBClient:
    return InfluxDBClient(
        url=double.url, token=token or double.admin_token, org=double.org, timeout=5_000, **options
    )


def raw_write(double, body: bytes, token=None, headers=None, **params):
    query = {"org": double.org, "bucket": "acme", "precision": "s", **params}
    all_headers = {"Authorization": f"Token {token or double.admin_token}", **(headers or {})}
    return requests.post(f"{double.url}/api/v2/write", params=query, data=body,
                         headers=all_headers, timeout=5)  # fmt: skip


def raw_query(double, flux: str, token=None):
    return requests.post(
        f"{double.url}/api/v2/query",
        params={"org": double.org},
        json={"query": flux, "dialect": {"annotations": ["datatype", "group", "default"]}},
        headers={"Authorization": f"Token {token or double.admin_token}"},
        timeout=5,
    )


@pytest.fixture
def acme(influxdb):
    influxdb.create_bucket("acme")
    return influxdb


# --------------------------------------------------------------------------- health, auth, orgs


def test_health_and_ping_need_no_token(influxdb):
    with client_for(influxdb, token="wrong") as client:
        assert client.ping() is True
        assert client.version() == influxdb.version
    assert requests.get(f"{influxdb.url}/health", timeout=5).json()["status"] == "pass"
    ping = requests.get(f"{influxdb.url}/ping", timeout=5)
    assert ping.status_code == 204
    assert ping.headers["X-Influxdb-Build"] == "OSS"


@pytest.mark.parametrize("header", [None, "Token nope", "Basic abc", "Token "])
def test_missing_or_unknown_token_is_401_with_influxdb_error_body(influxdb, header):
    headers = {"Authorization": header} if header else {}
    answer = requests.get(f"{influxdb.url}/api/v2/buckets", headers=headers, timeout=5)
    assert answer.status_code == 401
    assert answer.json() == {"code": "unauthorized", "message": "unauthorized access"}
    assert answer.headers["X-Platform-Error-Code"] == "unauthorized"


def test_an_inactive_token_is_refused_and_can_be_reactivated(acme):
    token = acme.create_token(("read", "acme"))
    acme.set_token_active(token, False)
    assert raw_query(acme, 'from(bucket: "acme") |> range(start: 0)', token).status_code == 401
    acme.set_token_active(token, True)
    assert raw_query(acme, 'from(bucket: "acme") |> range(start: 0)', token).status_code == 200


def test_orgs_are_found_by_name_and_unknown_names_are_404(influxdb):
    with client_for(influxdb) as client:
        orgs = client.organizations_api().find_organizations(org=influxdb.org)
        assert [org.id for org in orgs] == [influxdb.org_id]
        with pytest.raises(ApiException) as caught:
            client.organizations_api().find_organizations(org="nobody")
    assert caught.value.status == 404
    assert json.loads(caught.value.body)["message"] == 'organization name "nobody" not found'
    headers = {"Authorization": f"Token {influxdb.admin_token}"}
    by_id = requests.get(
        f"{influxdb.url}/api/v2/orgs/{influxdb.org_id}", headers=headers, timeout=5
    )
    assert by_id.json()["name"] == influxdb.org
    bad_id = requests.get(f"{influxdb.url}/api/v2/orgs/xyz", headers=headers, timeout=5)
    assert (bad_id.status_code, bad_id.json()["message"]) == (
        400,
        "id must have a length of 16 bytes",
    )


def test_a_bucket_token_cannot_list_the_org(acme):
    token = acme.create_token(("read", "acme"))
    with client_for(acme, token) as client:
        assert client.organizations_api().find_organizations(org=acme.org) == []


# --------------------------------------------------------------------------- buckets


def test_bucket_create_find_get_delete(influxdb):
    with client_for(influxdb) as client:
        api = client.buckets_api()
        rules = BucketRetentionRules(type="expire", every_seconds=400 * 86400)
        created = api.create_bucket(bucket_name="acme", org=influxdb.org_id, retention_rules=rules)
        assert created.retention_rules[0].every_seconds == 400 * 86400
        assert api.find_bucket_by_name("acme").id == created.id
        assert api.find_bucket_by_id(created.id).name == "acme"
        assert [b.name for b in api.find_buckets(org_id=influxdb.org_id, name="acme").buckets] == [
            "acme"
        ]
        api.delete_bucket(created.id)
        assert api.find_bucket_by_name("acme") is None
        with pytest.raises(ApiException) as caught:
            api.find_bucket_by_id(created.id)
    assert caught.value.status == 404
    assert influxdb.bucket_retention  # the helper exists for other tests


def test_a_duplicate_bucket_name_is_422_conflict_and_other_orgs_may_reuse_it(influxdb):
    influxdb.create_bucket("acme")
    with client_for(influxdb) as client:
        with pytest.raises(ApiException) as caught:
            client.buckets_api().create_bucket(bucket_name="acme", org=influxdb.org_id)
        assert caught.value.status == 422
        assert json.loads(caught.value.body) == {
            "code": "conflict",
            "message": "bucket with name acme already exists",
        }
        other = influxdb.create_org("other")
        assert client.buckets_api().create_bucket(bucket_name="acme", org=other).name == "acme"


def test_bucket_names_and_retention_are_validated(influxdb):
    headers = {"Authorization": f"Token {influxdb.admin_token}"}
    url = f"{influxdb.url}/api/v2/buckets"
    underscore = requests.post(url, json={"orgID": influxdb.org_id, "name": "_x"},
                               headers=headers, timeout=5)  # fmt: skip
    assert underscore.status_code == 400
    quoted = requests.post(url, json={"orgID": influxdb.org_id, "name": 'a"b'},
                           headers=headers, timeout=5)  # fmt: skip
    assert quoted.status_code == 400
    assert "may not include quotation marks" in quoted.json()["message"]

    def create(seconds: int) -> requests.Response:
        return requests.post(
            url,
            json={"orgID": influxdb.org_id, "name": "x",
                  "retentionRules": [{"type": "expire", "everySeconds": seconds}]},
            headers=headers, timeout=5,
        )  # fmt: skip

    negative = create(-1)
    assert (negative.status_code, negative.json()["message"]) == (
        422,
        "expiration seconds cannot be negative",
    )
    # 2.7 stores the bucket, then the storage engine refuses the retention policy with a plain
    # error: an internal error, and the bucket is removed again.
    short = create(60)
    assert short.status_code == 500
    assert short.json() == {
        "code": "internal error",
        "message": "An internal error has occurred - check server logs",
    }
    assert "x" not in influxdb.bucket_names()
    assert create(3600).status_code == 201
    missing_org = requests.post(url, json={"name": "x"}, headers=headers, timeout=5)
    assert missing_org.status_code == 400


def test_a_bucket_looked_up_by_org_and_name_is_404_when_missing(acme):
    """tenant/service_bucket.go FindBuckets: org + name is GetBucketByName, which fails."""
    headers = {"Authorization": f"Token {acme.admin_token}"}
    url = f"{acme.url}/api/v2/buckets"
    by_org_id = requests.get(url, params={"orgID": acme.org_id, "name": "nope"},
                             headers=headers, timeout=5)  # fmt: skip
    assert by_org_id.status_code == 404
    assert by_org_id.json() == {"code": "not found", "message": 'bucket "nope" not found'}
    by_org = requests.get(url, params={"org": acme.org, "name": "nope"}, headers=headers, timeout=5)
    assert by_org.status_code == 404
    by_id = requests.get(url, params={"id": "0123456789abcdef"}, headers=headers, timeout=5)
    assert (by_id.status_code, by_id.json()["message"]) == (404, "bucket not found")
    name_only = requests.get(url, params={"name": "nope"}, headers=headers, timeout=5)
    assert (name_only.status_code, name_only.json()["buckets"]) == (200, [])
    found = requests.get(url, params={"orgID": acme.org_id, "name": "acme"}, headers=headers,
                         timeout=5)  # fmt: skip
    assert [b["name"] for b in found.json()["buckets"]] == ["acme"]


def test_listing_buckets_shows_only_what_the_token_may_read(acme):
    acme.create_bucket("globex")
    token = acme.create_token(("read", "acme"))
    with client_for(acme, token) as client:
        assert [b.name for b in client.buckets_api().find_buckets().buckets] == ["acme"]
        assert client.buckets_api().find_bucket_by_name("globex") is None
        with pytest.raises(ApiException) as caught:
            client.buckets_api().find_bucket_by_id(acme.bucket_id("globex"))
    assert caught.value.status == 401
    assert "is unauthorized" in json.loads(caught.value.body)["message"]


# --------------------------------------------------------------------------- authorizations


def _read_permission(double, bucket_id):
    return Permission(
        action="read",
        resource=PermissionResource(type="buckets", id=bucket_id, org_id=double.org_id),
    )


def test_authorizations_create_list_patch_delete(acme):
    bucket_id = acme.bucket_id("acme")
    with client_for(acme) as client:
        api = client.authorizations_api()
        wanted = Authorization(org_id=acme.org_id, description="reader",
                               permissions=[_read_permission(acme, bucket_id)])  # fmt: skip
        created = api.create_authorization(authorization=wanted)
        assert created.token and created.status == "active"
        assert created.permissions[0].resource.name == "acme"
        listed = {a.id: a for a in api.find_authorizations(org_id=acme.org_id)}
        assert listed[created.id].token == created.token
        assert listed[created.id].description == "reader"
        created.status = "inactive"
        assert api.update_authorization(created).status == "inactive"
        api.delete_authorization(created)
        assert created.id not in {a.id for a in api.find_authorizations()}
        with pytest.raises(ApiException) as caught:
            api.delete_authorization(created.id)
    assert caught.value.status == 404


@pytest.mark.parametrize(("listing", "shown"), [("hashed", "REDACTED"), ("redacted", "redacted")])
def test_servers_that_hash_tokens_list_no_token_values(influxdb_factory, listing, shown):
    double = influxdb_factory(token_listing=listing)
    bucket_id = double.create_bucket("acme")
    with client_for(double) as client:
        api = client.authorizations_api()
        created = api.create_authorization(
            org_id=double.org_id, permissions=[_read_permission(double, bucket_id)]
        )
        assert len(created.token) > 20
        assert {a.token for a in api.find_authorizations()} == {shown}
        assert api.find_authorization_by_id(created.id).token == shown


def test_a_token_cannot_grant_more_than_it_has(acme):
    reader = acme.create_token(("read", "acme"))
    with client_for(acme, reader) as client, pytest.raises(ApiException) as caught:
        client.authorizations_api().create_authorization(
            org_id=acme.org_id, permissions=[_read_permission(acme, acme.bucket_id("acme"))]
        )
    assert caught.value.status == 401


# --------------------------------------------------------------------------- token scoping


def test_a_read_token_reads_its_bucket_only_and_cannot_write(acme):
    acme.create_bucket("globex")
    admin_write = raw_write(acme, b"m f=1 1")
    assert admin_write.status_code == 204
    token = acme.create_token(("read", "acme"))
    assert raw_query(acme, 'from(bucket: "acme") |> range(start: 0)', token).status_code == 200
    other = raw_query(acme, 'from(bucket: "globex") |> range(start: 0)', token)
    assert other.status_code == 404
    assert other.json()["message"] == (
        'failed to initialize execute state: could not find bucket "globex"'
    )
    write = raw_write(acme, b"m f=2 2", token)
    assert write.status_code == 403
    assert write.json() == {"code": "forbidden", "message": "insufficient permissions for write"}
    assert acme.point_count("acme") == 1


def test_a_write_token_cannot_read(acme):
    token = acme.create_token(("write", "acme"))
    assert raw_write(acme, b"m f=2 2", token).status_code == 204
    assert raw_query(acme, 'from(bucket: "acme") |> range(start: 0)', token).status_code == 404


def test_an_org_wide_bucket_token_covers_every_bucket(acme):
    acme.create_bucket("globex")
    token = acme.create_token(("write", None), ("read", None))
    assert raw_write(acme, b"m f=1 1", token, bucket="globex").status_code == 204
    assert raw_query(acme, 'from(bucket: "globex") |> range(start: 0)', token).status_code == 200


# --------------------------------------------------------------------------- writes


def test_client_writes_gzip_with_seconds_precision(acme):
    with client_for(acme, enable_gzip=True) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket="acme", record=b"m,host=a v=1.5 1700000000\nm,host=b v=2 1700000001",
            write_precision="s",
        )  # fmt: skip
    assert acme.points("acme") == {
        StoredPoint("m", frozenset({("host", "a")}), "v", 1.5, 1_700_000_000_000_000_000),
        StoredPoint("m", frozenset({("host", "b")}), "v", 2.0, 1_700_000_001_000_000_000),
    }
    record = acme.writes[-1]
    assert (record.content_encoding, record.precision, record.points) == ("gzip", "s", 2)
    assert record.decoded_bytes > 0 and record.status == 204


@pytest.mark.parametrize(
    ("precision", "factor"), [("ns", 1), ("us", 1_000), ("ms", 1_000_000), ("s", 10**9)]
)
def test_precision_scales_timestamps(acme, precision, factor):
    assert raw_write(acme, b"m f=1 5", precision=precision).status_code == 204
    assert {p.time_ns for p in acme.points("acme")} == {5 * factor}


def test_same_series_field_and_time_overwrites(acme):
    for body in (b"m,a=1,b=2 f=1,g=1 10", b"m,b=2,a=1 f=9 10\nm,a=1,b=2 f=7 10"):
        assert raw_write(acme, body).status_code == 204
    assert acme.points("acme") == {
        StoredPoint("m", frozenset({("a", "1"), ("b", "2")}), "f", 7.0, 10 * 10**9),
        StoredPoint("m", frozenset({("a", "1"), ("b", "2")}), "g", 1.0, 10 * 10**9),
    }


def test_escaped_names_and_values_are_stored_unescaped(acme):
    line = r'my\ meas,tag\,key=v\=a\ l f\ 1="say \"hi\" \\",f2=t,f3=-3i,f4=4u,f5=1e3 7'
    assert raw_write(acme, line.encode()).status_code == 204
    stored = {(p.measurement, p.field): p for p in acme.points("acme")}
    assert stored["my meas", "f 1"].value == 'say "hi" \\'
    assert stored["my meas", "f 1"].tags == frozenset({("tag,key", "v=a l")})
    assert stored["my meas", "f2"].value is True
    assert stored["my meas", "f3"].value == -3
    assert isinstance(stored["my meas", "f4"].value, UInt)
    assert stored["my meas", "f5"].value == 1000.0


def test_a_malformed_line_rejects_the_whole_batch_naming_the_line(acme):
    body = b"# comment\n\nm f=1 1\nm,host=a 2\nm f=abc 3\n"
    answer = raw_write(acme, body)
    assert answer.status_code == 400
    assert answer.json() == {
        "code": "invalid",
        "message": "unable to parse 'm,host=a 2': invalid field format\n"
        "unable to parse 'm f=abc 3': invalid boolean",
    }
    assert acme.point_count("acme") == 0
    assert acme.writes[-1].rejected_lines == (4, 5)


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"bucket": "nope"}, 404, 'bucket "nope" not found'),
        ({"org": "nobody"}, 404, 'organization name "nobody" not found'),
        ({"precision": "m"}, 400, "invalid precision; valid precision units are ns, us, ms, and s"),
        ({"bucket": ""}, 404, "bucket not found"),
        ({"org": ""}, 400, "Please provide either orgID or org"),
    ],
)
def test_write_parameters_are_checked(acme, params, status, message):
    answer = raw_write(acme, b"m f=1 1", **params)
    assert (answer.status_code, answer.json()["message"]) == (status, message)


def test_org_and_bucket_may_be_given_by_id(acme):
    answer = raw_write(acme, b"m f=1 1", org="", orgID=acme.org_id, bucket=acme.bucket_id("acme"))
    assert answer.status_code == 204


def test_an_empty_body_writes_nothing_and_a_bad_gzip_body_is_an_internal_error(acme):
    """http/points: an empty batch is no error; gzip.NewReader's error is a plain Go error."""
    assert raw_write(acme, b"").status_code == 204
    bad = raw_write(acme, b"not gzip", headers={"Content-Encoding": "gzip"})
    assert bad.status_code == 500
    assert bad.json()["message"] == "An internal error has occurred - check server logs"
    cut = raw_write(acme, gzip.compress(b"m f=1 1\n" * 100)[:-12],
                    headers={"Content-Encoding": "gzip"})  # fmt: skip
    assert cut.status_code == 500
    assert acme.point_count("acme") == 0


def test_oss_sets_no_body_limit_by_default(acme):
    """The launcher of 2.7 never sets MaxBatchSizeBytes: a 26 MB body is read whole."""
    body = b"#" + b"x" * 999 + b"\n"
    lines = body * 26_000 + b"m f=1 1700000000\n"
    answer = raw_write(acme, gzip.compress(lines, 1), headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 204
    assert acme.point_count("acme") == 1


def test_oversized_bodies_are_413_even_when_compressed(influxdb_factory):
    double = influxdb_factory(max_body_bytes=1000)
    double.create_bucket("acme")
    lines = b"".join(b"m f=%d %d\n" % (i, i) for i in range(200))
    plain = raw_write(double, lines)
    assert plain.status_code == 413
    assert plain.json() == {
        "code": "request too large",
        "message": "unable to read data: points batch is too large",
    }
    packed = raw_write(double, gzip.compress(lines), headers={"Content-Encoding": "gzip"})
    assert packed.status_code == 413
    assert raw_write(double, b"m f=1 1").status_code == 204


def test_a_field_type_conflict_is_a_partial_write(acme):
    assert raw_write(acme, b"m f=1 1").status_code == 204
    answer = raw_write(acme, b"m f=2i 2\nm f=3 3\nm g=1i 4")
    assert answer.status_code == 422
    assert answer.json()["message"] == (
        "failure writing points to database: partial write: field type conflict: input field "
        '"f" on measurement "m" is type integer, already exists as type float dropped=1'
    )
    assert {(p.field, p.value) for p in acme.points("acme")} == {("f", 1.0), ("f", 3.0), ("g", 1)}


def test_points_without_timestamp_get_the_server_time(acme):
    before = time.time_ns()
    assert raw_write(acme, b"m f=1").status_code == 204
    (point,) = acme.points("acme")
    assert before - 10**9 <= point.time_ns <= time.time_ns()
    assert point.time_ns % 10**9 == 0


def test_concurrent_writers_lose_nothing(acme):
    def writer(number: int) -> None:
        with client_for(acme, enable_gzip=True) as client:
            api = client.write_api(write_options=SYNCHRONOUS)
            for batch in range(4):
                lines = "\n".join(
                    f"electrical,campaign=c,device_sn=d{number},channel_name=Ph\\ 1 "
                    f"M_U1_V={i}.5,M_I=1 {1_700_000_000 + batch * 1000 + i}"
                    for i in range(1000)
                )
                api.write(bucket="acme", record=lines, write_precision="s")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert acme.point_count("acme") == 8 * 4 * 1000 * 2
    assert time.monotonic() - started < 10


# --------------------------------------------------------------------------- line protocol


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("m", "missing fields"),
        ("m,a=1", "missing fields"),
        (",m f=1", "missing measurement"),
        ("m,=1 f=1", "missing tag key"),
        ("m,a= f=1", "missing tag value"),
        ("m,a f=1", "missing tag value"),
        ("m,a=1=2 f=1", "invalid tag format"),
        ("m,a=1,a=2 f=1", "duplicate tags"),
        ("m,b=1,a=2,b=3 f=1", "duplicate tags"),
        ("m f=", "missing field value"),
        ("m =1", "missing field key"),
        ("m f", "invalid field format"),
        ("m f=abc", "invalid boolean"),
        ("m f=tRuE", "invalid boolean"),
        ("m f=1.2.3", "invalid number"),
        ("m f=-1u", "invalid number"),
        ("m f=1.5i", "invalid number"),
        ('m f="abc', "unbalanced quotes"),
        ("m f=1 12x", "bad timestamp"),
        ("m f=1 1\r", "bad timestamp"),
        ("m f=1 1 2", "point is invalid"),
        (r"m\\,t=v\\ f=1", "missing fields"),  # both separators are escaped
        (r"m,t=v\ f=1", "invalid tag format"),  # a tag value ending in a backslash
        (r"m,t=v\,u=w f=1", "invalid tag format"),
        (r"m a\=1", "invalid field format"),  # a field key ending in a backslash
        ("m,time=1 f=1", 'cannot use reserved tag key "time"'),
        ("m,_field=1 f=1", 'cannot use reserved tag key "_field"'),
        ("m," + "t=" + "v" * 65535 + " f=1", "max key length exceeded: 65539 > 65535"),
        ("m f=99999999999999999999i",
         "unable to parse integer 99999999999999999999: value out of range"),
        ("m f=1 9223372036854775807",
         "time outside range -9223372036854775806 - 9223372036854775806"),
    ],
)  # fmt: skip
def test_malformed_lines_are_refused_with_influxdb_reasons(line, reason):
    with pytest.raises(LineError) as caught:
        parse_line(line)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("m f=1", ("m", (), (("f", 1.0),))),
        ("m,b=2,a=1 f=1i,g=2u", ("m", (("a", "1"), ("b", "2")), (("f", 1), ("g", UInt(2))))),
        *[(f"m f={word}", ("m", (), (("f", True),)))
          for word in ("t", "T", "true", "True", "TRUE")],
        *[(f"m f={word}", ("m", (), (("f", False),)))
          for word in ("f", "F", "false", "False", "FALSE")],
        (r"m\,x\ y,t\=k=v\,w f=1", ("m,x y", (("t=k", "v,w"),), (("f", 1.0),))),
        (r'm f="a\"b\\c\d"', ("m", (), (("f", 'a"b\\c\\d'),))),
        # models/points.go: a separator after a backslash is escaped, a backslash is kept
        (r"m,t=a\\,b f=1", ("m", (("t", "a\\,b"),), (("f", 1.0),))),
        (r"m,t=a\b\c f=1", ("m", (("t", "a\\b\\c"),), (("f", 1.0),))),
        (r"m,t=Vo\ie1 f\,k\ x\=y\"z=1", ("m", (("t", "Vo\\ie1"),), (('f,k x=y"z', 1.0),))),
        (r"m a\\b=1", ("m", (), (("a\\\\b", 1.0),))),
        (r'm a\\"b=1', ("m", (), (('a\\"b', 1.0),))),
        ("m f=-.5,g=1E-3,h=-0i", ("m", (), (("f", -0.5), ("g", 0.001), ("h", 0)))),
        ('m f="with space, comma=equals"', ("m", (), (("f", "with space, comma=equals"),))),
    ],
)  # fmt: skip
def test_well_formed_lines_follow_the_documented_syntax(line, expected):
    point = parse_line(line, "s", 0)
    assert (point.measurement, point.tags, point.fields) == expected
    assert _parse_slow(line, 1, 0) == parse_line(line, "ns", 0)
    fast = _parse_fast(line, 1, 0)
    assert fast is None or fast == _parse_slow(line, 1, 0)


def test_batches_skip_comments_and_blank_lines_and_keep_newlines_in_strings():
    points, rejected = parse_batch('# c\n\n  m f=1 1\nm s="a\nb" 2\n\t# indented comment\n', "s")
    assert [p.fields for p in points] == [(("f", 1.0),), (("s", "a\nb"),)]
    assert rejected == []


# --------------------------------------------------------------------------- queries


@pytest.fixture
def loaded(acme):
    lines = [
        "electrical,campaign=campaign1,device_master_sn=02001171,channel_name=Ph\\ 1 "
        f"M_U1_V={200 + i}.5,M_I1_A={i} {1754191200 + 60 * i}"
        for i in range(10)
    ]
    lines.append("electrical,campaign=campaign2,device_master_sn=02001171 M_U1_V=1 1754191200")
    lines.append("electrical,campaign=campaign1,device_master_sn=99 M_U1_V=1 1754191200")
    lines.append("electrical,campaign=campaign1,device_master_sn=02001171 M_U1_V=1 1754278801")
    assert raw_write(acme, "\n".join(lines).encode()).status_code == 204
    return acme


def test_the_verify_query_counts_the_values_of_one_file(loaded):
    with client_for(loaded) as client:
        tables = client.query_api().query(VERIFY_QUERY)
    assert [[record.get_value() for record in table.records] for table in tables] == [[20]]
    csv_text = raw_query(loaded, VERIFY_QUERY).text
    assert csv_text == (
        "#datatype,string,long,long\r\n#group,false,false,false\r\n#default,_result,,\r\n"
        ",result,table,_value\r\n,,0,20\r\n\r\n"
    )


def test_a_query_without_matching_data_returns_no_table(loaded):
    with client_for(loaded) as client:
        query = VERIFY_QUERY.replace("campaign1", "nothing")
        assert client.query_api().query(query) == []


def test_raw_rows_carry_the_flux_columns(loaded):
    flux = (
        'from(bucket: "acme") |> range(start: 2025-08-03T03:20:00Z, stop: 2025-08-03T03:22:00Z) '
        '|> filter(fn: (r) => r["_field"] == "M_U1_V" and (r.channel_name == "Ph 1" or '
        'r.device_master_sn == "99"))'
    )
    with client_for(loaded) as client:
        tables = client.query_api().query(flux)
    rows = [(r.values.get("channel_name"), r.get_value(), r.get_time().isoformat()) for t in tables
            for r in t.records]  # fmt: skip
    assert sorted(rows, key=str) == sorted(
        [("Ph 1", 200.5, "2025-08-03T03:20:00+00:00"), ("Ph 1", 201.5, "2025-08-03T03:21:00+00:00"),
         (None, 1.0, "2025-08-03T03:20:00+00:00")], key=str,
    )  # fmt: skip
    header = raw_query(loaded, flux).text.splitlines()[3]
    assert header == (
        ",result,table,_start,_stop,_time,_value,_field,_measurement,campaign,channel_name,"
        "device_master_sn"
    )


def test_group_keep_last_and_yield(loaded):
    flux = (
        'from(bucket: "acme") |> range(start: 0) |> filter(fn: (r) => r._field != "M_I1_A") '
        '|> group(columns: ["device_master_sn"]) |> last() |> keep(columns: ["_value", '
        '"device_master_sn"]) |> yield(name: "latest")'
    )
    with client_for(loaded) as client:
        tables = client.query_api().query(flux)
    values = {t.records[0].values["device_master_sn"]: t.records[0].get_value() for t in tables}
    assert values == {"02001171": 1.0, "99": 1.0}
    assert {t.records[0].values["result"] for t in tables} == {"latest"}


def test_durations_and_now_bound_the_range(acme):
    now = int(time.time())
    assert raw_write(acme, f"m f=1 {now - 30}\nm f=2 {now - 7200}".encode()).status_code == 204
    flux = 'from(bucket: "acme") |> range(start: -1h, stop: now()) |> count()'
    with client_for(acme) as client:
        assert client.query_api().query(flux)[0].records[0].get_value() == 1


def test_flux_text_bodies_and_gzip_answers_are_supported(loaded):
    answer = requests.post(
        f"{loaded.url}/api/v2/query", params={"org": loaded.org},
        data=VERIFY_QUERY.encode(),
        headers={"Authorization": f"Token {loaded.admin_token}",
                 "Content-Type": "application/vnd.flux", "Accept-Encoding": "gzip"},
        timeout=5,
    )  # fmt: skip
    assert answer.status_code == 200
    assert answer.headers["Content-Encoding"] == "gzip"
    assert answer.text.splitlines() == [",result,table,_value", ",_result,0,20", ""]


@pytest.mark.parametrize(
    ("flux", "fragment"),
    [
        ('from(bucket: "acme") |> count()', "cannot submit unbounded read"),
        ('from(bucket: "acme") |> range(start: 0) |> mean()', "mean() is not supported"),
        ('import "strings"\nfrom(bucket: "acme") |> range(start: 0)', "'import'"),
        ('x = 1\nfrom(bucket: "acme") |> range(start: 0)', "variable assignments"),
        ('from(bucket: "acme") |> range(start: 0) |> filter(fn: (r) => r._value =~ /a/)',
         "regular expression"),
        ('from(bucket: "acme") |> range(start: 0) |> filter(fn: (r) => r._value + 1 > 2)',
         "arithmetic"),
        ('from(bucket: "acme") |> range(start: -1mo)', "calendar durations"),
        ('from(bucket: "acme") |> range(start: 0', "expected ')'"),
        ("buckets()", "must start with from()"),
    ],
)  # fmt: skip
def test_unsupported_flux_is_400_with_a_clear_message(acme, flux, fragment):
    with pytest.raises(FluxError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        compile_query(flux)
    answer = raw_query(acme, flux)
    assert answer.status_code == 400
    assert fragment in answer.json()["message"]


def test_a_query_with_an_unknown_org_is_400(acme):
    answer = requests.post(
        f"{acme.url}/api/v2/query",
        params={"org": "nobody"},
        json={"query": 'from(bucket: "acme") |> range(start: 0)'},
        headers={"Authorization": f"Token {acme.admin_token}"},
        timeout=5,
    )
    assert answer.status_code == 400
    assert answer.json()["message"] == (
        'failed to decode request body: organization name "nobody" not found'
    )


# --------------------------------------------------------------------------- faults


def _connect(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_refused_connections_then_accepted_again_on_the_same_port(acme):
    port = acme.port
    with client_for(acme) as client:
        assert client.ping()
        acme.refuse_connections()
        with pytest.raises(ConnectionRefusedError):
            _connect(port)
        assert client.ping() is False
        acme.accept_connections()
        assert acme.port == port
        assert client.ping() is True
        assert client.buckets_api().find_bucket_by_name("acme") is not None


def test_delay_makes_client_timeouts_happen(acme):
    acme.set_delay(0.5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{acme.url}/ping", timeout=0.2)
    acme.set_delay(0.5, only_writes=True)
    assert requests.get(f"{acme.url}/ping", timeout=0.2).status_code == 204
    acme.reset_faults()
    assert raw_write(acme, b"m f=1 1").status_code == 204


def test_429_with_retry_after_then_normal_service(acme):
    acme.fail_next(2, status=429, retry_after=3, only_writes=True)
    assert requests.get(f"{acme.url}/ping", timeout=5).status_code == 204
    for _ in range(2):
        answer = raw_write(acme, b"m f=1 1")
        assert answer.status_code == 429
        assert answer.headers["Retry-After"] == "3"
        assert answer.json()["code"] == "too many requests"
    assert acme.point_count("acme") == 0
    assert raw_write(acme, b"m f=1 1").status_code == 204


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_on_any_request(acme, status):
    acme.fail_next(1, status=status)
    assert requests.get(f"{acme.url}/health", timeout=5).status_code == status
    assert requests.get(f"{acme.url}/health", timeout=5).status_code == 200


def test_exactly_the_nth_write_fails(acme):
    acme.fail_nth_write(3, status=503)
    statuses = [raw_write(acme, b"m f=%d %d" % (i, i)).status_code for i in range(5)]
    assert statuses == [204, 204, 503, 204, 204]
    assert acme.point_count("acme") == 4


def test_the_client_retries_through_injected_429(acme):
    from influxdb_client.client.write_api import WriteOptions

    acme.fail_next(2, status=429, retry_after=0, only_writes=True)
    options = WriteOptions(batch_size=10, flush_interval=10, retry_interval=10,
                           max_retry_delay=50, max_retries=5)  # fmt: skip
    with client_for(acme) as client, client.write_api(write_options=options) as api:
        api.write(bucket="acme", record="m f=1 1", write_precision="s")
    assert acme.point_count("acme") == 1
    assert [w.status for w in acme.writes] == [429, 429, 204]


def test_disconnect_drops_the_connection_without_an_answer(acme):
    acme.disconnect_next(1, only_writes=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        raw_write(acme, b"m f=1 1")
    assert raw_write(acme, b"m f=1 1").status_code == 204


# --------------------------------------------------------------------------- contract, CLI


def test_every_request_of_the_client_conforms_to_the_openapi_contract(influxdb, influxdb_contract):
    with client_for(influxdb, enable_gzip=True) as client:
        client.ping()
        org_id = client.organizations_api().find_organizations(org=influxdb.org)[0].id
        bucket = client.buckets_api().create_bucket(
            bucket_name="acme", org=org_id,
            retention_rules=BucketRetentionRules(type="expire", every_seconds=3600),
        )  # fmt: skip
        client.buckets_api().find_bucket_by_name("acme")
        client.buckets_api().find_buckets(org_id=org_id, name="acme")
        auth = client.authorizations_api().create_authorization(
            authorization=Authorization(
                org_id=org_id, description="powerview_token_for_bucket_acme",
                permissions=[_read_permission(influxdb, bucket.id)],
            )
        )  # fmt: skip
        client.authorizations_api().find_authorizations(org_id=org_id)
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket="acme", record=f"m f=1 {int(time.time())}", write_precision="s"
        )
        client.query_api().query('from(bucket: "acme") |> range(start: 0) |> count()')
        client.authorizations_api().delete_authorization(auth)
        client.buckets_api().delete_bucket(bucket)
    assert len(influxdb.requests) >= 11
    assert influxdb_contract.check_requests(influxdb.requests) == []


def test_the_contract_checker_reports_departures(influxdb_contract):
    problems = influxdb_contract.check(
        "POST", "/api/v2/write", {"bucket": ["b"], "precision": ["h"], "extra": ["1"]},
        {"Content-Type": "text/plain"},
    )  # fmt: skip
    assert any("'org' is missing" in p for p in problems)
    assert any("'precision'='h'" in p for p in problems)
    assert any("'extra' is not declared" in p for p in problems)
    assert any("body is missing" in p for p in problems)
    bad_body = influxdb_contract.check(
        "POST", "/api/v2/authorizations", {}, {"Content-Type": "application/json"},
        {"orgID": "x", "permissions": [{"action": "delete", "resource": {"type": "buckets"}}]},
    )  # fmt: skip
    assert any("'delete' is not one of" in p for p in bad_body)
    assert influxdb_contract.check("GET", "/api/v2/nothing") == [
        "GET /api/v2/nothing: path not in the contract"
    ]


def test_the_double_runs_by_hand_as_a_module():
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.doubles.influxdb", "--port", "0", "--admin-token", "demo"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    try:
        printed = dict(process.stdout.readline().strip().split("=", 1) for _ in range(4))
        assert printed["INFLUXDB_ADMIN_TOKEN"] == "demo"
        with InfluxDBClient(url=printed["INFLUXDB_URL"], token="demo") as client:
            assert client.ping()
            assert client.buckets_api().find_buckets().buckets is not None
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_points_beyond_the_retention_are_a_partial_write(influxdb):
    """v1/coordinator/points_writer.go MapShards: old points dropped, the others stored."""
    influxdb.create_bucket("short", retention_seconds=3600)
    now = int(time.time())
    body = f"m f=1 {now}\nm,t=a\\ b f=2 {now - 86400}\nm f=3 {now - 86400 * 2}\n".encode()
    answer = raw_write(influxdb, body, bucket="short")
    assert answer.status_code == 422
    message = answer.json()["message"]
    assert message.startswith(
        "failure writing points to database: partial write: dropped 2 points outside retention "
        "policy of duration 1h0m0s - oldest point m at "
    )
    assert "newest point m,t=a\\ b at " in message
    assert message.endswith(
        f"dropped=2 for database: {influxdb.bucket_id('short')} for retention policy: autogen"
    )
    assert {p.value for p in influxdb.points("short")} == {1.0}


def test_a_type_conflict_names_the_field_as_go_quotes_it(acme):
    assert raw_write(acme, b'm a"b=1 1').status_code == 204
    answer = raw_write(acme, b'm a"b=1i 2\nm a"b=2i 3')
    assert answer.json()["message"] == (
        "failure writing points to database: partial write: field type conflict: input field "
        '"a\\"b" on measurement "m" is type integer, already exists as type float dropped=2'
    )


def test_an_orgs_buckets_are_listed_by_name_page_after_page(acme):
    """tenant/storage_bucket.go listBucketsByOrg: the name index; ``after`` resumes there."""
    names = {f"co{number:03d}" for number in range(150)}
    for name in names:
        acme.create_bucket(name)
    with client_for(acme) as client:
        first = client.buckets_api().find_buckets(org_id=acme.org_id, limit=100)
        assert [b.name for b in first.buckets] == sorted([b.name for b in first.buckets])
        assert first.links.next is not None
        listed = [b.name for b in client.buckets_api().find_buckets_iter(org_id=acme.org_id)]
    assert set(listed) == names | {"acme", "_monitoring", "_tasks"}
    assert len(listed) == len(set(listed))
