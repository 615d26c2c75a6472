"""The fdi HTTP API driven through the platform's official Python SDK (huaweicloudsdkroma).

Every check goes through the SDK the way a customer's code would: requests are built from the
SDK's request models, responses are asserted on the SDK's parsed response models (not on raw
JSON), errors on the SDK's ClientRequestException (status_code, error_code).

Endpoints the SDK has no method for (test-sql, one run's detail, monitor-overview, multi-task
mapping list) go through the client's generic ``call_api``.

Section numbers in comments refer to the reference in /work/shared/spec/:
fdi-api-reference.zh.txt (5.x, 11.x) and apps-api-reference.zh.txt (4.1.x).

Run with tests/sdk/run.sh (it builds the venv); the fixture starts ``$FDI_BIN serve`` itself.
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.request
import uuid

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException, ServiceResponseException
from huaweicloudsdkcore.http.http_handler import HttpHandler
from huaweicloudsdkcore.sdk_response import SdkResponse
from huaweicloudsdkroma.v2 import (
    BatchStartOrStopTasksRequest,
    CheckRomaAppDetailsRequest,
    Content,
    CountTasksRequest,
    CreateAppReq,
    CreateCommonTaskRequest,
    CreateCommonTaskRequestBody,
    CreateDatasourceInfoRequest,
    CreateDispatchesRequest,
    CreateMultiTaskMappingsRequest,
    CreateMultiTasksRequest,
    CreateRomaAppRequest,
    DatasourceInfo,
    DeleteDatasourceInfoByIdRequest,
    DeleteMultiTaskMappingRequest,
    DeleteRomaAppRequest,
    DeleteTaskRequest,
    InstallMultiTasksRequest,
    ListDatasourceColumnsRequest,
    ListDatasourcesRequest,
    ListDatasourceTablesRequest,
    ListMonitorInfosRequest,
    ListMonitorLogRequest,
    ListRomaAppRequest,
    ListTasksRequest,
    MappingInfo,
    MultiTaskColumnInfo,
    MultiTaskInitBody,
    MultiTaskMappingCreateBody,
    MultiTaskRequestBody,
    MultiTaskResetBody,
    MultiTaskUpdateBody,
    OperateTasksBean,
    ResetMultiTaskOffsetRequest,
    RomaClient,
    RunTaskRequest,
    ShowDataourceDetailRequest,
    ShowDispatchesRequest,
    ShowTaskRequest,
    StartTestDatasourceRequest,
    StopTaskRequest,
    TaskBasicRequestBody,
    TaskBean,
    TaskDispatch,
    UpdateAppReq,
    UpdateDatasourceInfoRequest,
    UpdateDispatchesRequest,
    UpdateMultiTasksRequest,
    UpdateRomaAppRequest,
    UpdateTaskRequest,
    ValidateRomaAppRequest,
)

PROJECT = "sdkproj"
INSTANCE = "sdkinst"
TOKEN = "sdk-token"
SFX = uuid.uuid4().hex[:8]  # keeps names unique against other runs sharing MySQL/PostgreSQL
COPY_ROWS = 250
FDI_PREFIX = "/v2/{project_id}/fdi/instances/{instance_id}"
TERMINAL = ("SUCCESS", "ERROR", "CANCELLED")


# ---- server and client ----------------------------------------------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fdi_bin():
    path = os.environ.get("FDI_BIN", "target/debug/fdi")
    # The binary may be rebuilt underneath us: wait a little for it to reappear.
    deadline = time.time() + 120
    while not os.access(path, os.X_OK):
        if time.time() > deadline:
            pytest.fail(f"fdi binary {path} not found (set FDI_BIN)")
        time.sleep(1)
    return os.path.abspath(path)


class FdiServer:
    def __init__(self):
        self.data_dir = tempfile.mkdtemp(prefix="fdi-sdk-")
        self.files = os.path.join(self.data_dir, "files")
        self.log_path = os.path.join(self.data_dir, "fdi.log")
        self.proc = None
        self.base = None

    def start(self):
        binary = _fdi_bin()
        env = dict(os.environ)
        env.update(
            FDI_AUTH_TOKENS=TOKEN,
            FDI_REALTIME_POLL_MS="500",
            FDI_REALTIME_PROGRESS_MS="1000",
            RUST_LOG=env.get("RUST_LOG", "info"),
        )
        for key in ("FDI_LISTEN", "FDI_DATA_DIR", "FDI_STORE", "FDI_FILES_ROOT"):
            env.pop(key, None)
        for _attempt in range(3):  # a port taken between probing and binding: try another
            port = _free_port()
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", self.data_dir],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            log.close()
            self.base = f"http://127.0.0.1:{port}"
            deadline = time.time() + 60
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    # /health needs no token.
                    with urllib.request.urlopen(self.base + "/health", timeout=2) as r:
                        if r.status == 200:
                            return
                except OSError:
                    pass
                time.sleep(0.2)
            self.stop()
        pytest.fail(f"fdi did not become healthy; log:\n{self.log_tail()}")

    def log_tail(self, n=60):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=25)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def server():
    s = FdiServer()
    os.makedirs(s.files, exist_ok=True)
    s.start()
    yield s
    s.stop()
    keep = os.environ.get("FDI_SDK_KEEP_DATA")
    if keep:
        print(f"\n[sdk] fdi data dir kept: {s.data_dir}")
    else:
        shutil.rmtree(s.data_dir, ignore_errors=True)


def _add_token(**kwargs):
    kwargs["request"].header_params["X-Auth-Token"] = TOKEN


def make_client(base, token=True):
    # BasicCredentials' project_id fills {project_id} in every resource path; the endpoint keeps
    # its http:// scheme (the builder only prefixes https:// to bare hosts).
    builder = (
        RomaClient.new_builder()
        .with_credentials(BasicCredentials("sdk-ak", "sdk-sk", PROJECT))
        .with_endpoints([base])
    )
    if token:
        builder = builder.with_http_handler(HttpHandler().add_request_handler(_add_token))
    return builder.build()


@pytest.fixture(scope="session")
def client(server):
    return make_client(server.base)


def expect_error(fn, status, code):
    with pytest.raises(ClientRequestException) as ei:
        fn()
    e = ei.value
    assert (e.status_code, e.error_code) == (status, code), str(e)
    return e


# ---- generic call_api for endpoints the SDK has no method for --------------------------------


class MonitorLogDetailResponse(SdkResponse):
    """5.2.3 GET tasks/{task_id}/monitor-logs/{tracking_id}, table 5-98."""

    openapi_types = {
        "id": "str",
        "execute_status": "str",
        "dirty_data_count": "int",
        "detail_logs": "list[TaskMonitorDetailLog]",
    }
    attribute_map = {k: k for k in openapi_types}

    def __init__(self, **kwargs):
        super().__init__()
        for k in self.openapi_types:
            setattr(self, k, kwargs.get(k))


class MonitorOverviewResponse(SdkResponse):
    """5.2.4 GET tasks/{task_id}/monitor-overview, table 5-105."""

    openapi_types = {
        "task_name": "str",
        "total_num": "int",
        "error_num": "int",
        "success_num": "int",
        "running_num": "int",
        "cancel_num": "int",
    }
    attribute_map = {k: k for k in openapi_types}

    def __init__(self, **kwargs):
        super().__init__()
        for k in self.openapi_types:
            setattr(self, k, kwargs.get(k))


class MultiTaskMappingsResponse(SdkResponse):
    """5.3.18 GET multi-tasks/{task_id}/mappings: the task element's mappings and their count."""

    openapi_types = {
        "mappings_total_count": "int",
        "mappings": "list[MultiTaskMappingElement]",
    }
    attribute_map = {k: k for k in openapi_types}

    def __init__(self, **kwargs):
        super().__init__()
        for k in self.openapi_types:
            setattr(self, k, kwargs.get(k))


def call(client, method, path, response_type, body=None, **path_params):
    path_params.setdefault("instance_id", INSTANCE)
    return client.call_api(
        resource_path=path,
        method=method,
        path_params=path_params,
        header_params={"Content-Type": "application/json"},
        body=body,
        response_type=response_type,
    )


def run_test_sql(client, datasource_id, sql):
    """5.1.9 POST datasources/{id}/test-sql: the response has the shape of 5.1.7's
    (`columns`: ColumnInfo), so the SDK's ListDatasourceColumnsResponse parses it."""
    return call(
        client,
        "POST",
        FDI_PREFIX + "/datasources/{datasource_id}/test-sql",
        "ListDatasourceColumnsResponse",
        body={"sql": sql},
        datasource_id=datasource_id,
    )



# ---- databases ------------------------------------------------------------------------------


def mysql(sql):
    cli = shutil.which("mariadb") or shutil.which("mysql")
    assert cli, "the mariadb/mysql client is needed to prepare MySQL tables"
    subprocess.run(
        [cli, "-h", "127.0.0.1", "-P", "3306", "-uroot", "test", "-e", sql],
        check=True,
        capture_output=True,
    )


def psql(sql):
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "test",
         "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
        check=True,
        capture_output=True,
    )


MY_TABLE = f"sdk_cols_{SFX}"
PG_TABLE = f"sdk_cols_{SFX}"


@pytest.fixture(scope="session")
def db_tables(server):
    """SQLite files under <data-dir>/files, a MySQL and a PostgreSQL table for metadata."""
    src = sqlite3.connect(os.path.join(server.files, "src.sqlite"))
    src.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL)")
    src.executemany(
        "INSERT INTO people VALUES (?, ?, ?)",
        [(i, f"person-{i}", i / 4) for i in range(1, COPY_ROWS + 1)],
    )
    src.execute("CREATE TABLE pets (id INTEGER PRIMARY KEY, owner INTEGER)")
    src.commit()
    src.close()
    dst = sqlite3.connect(os.path.join(server.files, "dst.sqlite"))
    dst.execute("CREATE TABLE people_copy (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL)")
    dst.commit()
    dst.close()
    rt = sqlite3.connect(os.path.join(server.files, "rt_src.sqlite"))
    rt.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, amount REAL, updated_at TEXT)")
    rt.executemany(
        "INSERT INTO events VALUES (?, ?, datetime('now', '-10 minutes'))",
        [(i, i * 1.5) for i in range(1, 21)],
    )
    rt.commit()
    rt.close()
    rt = sqlite3.connect(os.path.join(server.files, "rt_dst.sqlite"))
    rt.execute("CREATE TABLE events_copy (id INTEGER PRIMARY KEY, amount REAL, updated_at TEXT)")
    rt.commit()
    rt.close()

    mysql(
        f"CREATE TABLE {MY_TABLE} (id INT NOT NULL PRIMARY KEY, code VARCHAR(40) NOT NULL UNIQUE, "
        "price DECIMAL(10,3), created DATETIME, updated TIMESTAMP(6) NULL, note TEXT); "
        f"INSERT INTO {MY_TABLE} VALUES (1, 'a', 1.5, '2024-01-02 03:04:05', "
        "'2024-01-02 03:04:05.123456', 'x')"
    )
    psql(
        f"CREATE TABLE {PG_TABLE} (id BIGINT PRIMARY KEY, label VARCHAR(30) NOT NULL, "
        f"amount NUMERIC(12,4), at TIMESTAMPTZ); INSERT INTO {PG_TABLE} VALUES (1, 'a', 2.5, now())"
    )
    yield
    try:
        mysql(f"DROP TABLE IF EXISTS {MY_TABLE}")
    finally:
        psql(f"DROP TABLE IF EXISTS {PG_TABLE}")


def sqlite_digest(path, table):
    con = sqlite3.connect(path)
    try:
        rows = con.execute(f"SELECT id, name, score FROM {table} ORDER BY id").fetchall()
    finally:
        con.close()
    return len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()


# ---- apps -----------------------------------------------------------------------------------

APP_NAME = f"sdk-app-{SFX}"


@pytest.fixture(scope="session")
def app(client):
    return client.create_roma_app(
        CreateRomaAppRequest(
            instance_id=INSTANCE,
            body=CreateAppReq(name=APP_NAME, remark="created by the SDK suite", key=f"sdkkey{SFX}",
                              secret="Sdk-Secret-1234"),
        )
    )


def test_app_create_returns_server_app_info(app):
    # 4.1.3, table 4-18
    assert app.status_code == 201
    assert app.id
    assert app.name == APP_NAME
    assert app.remark == "created by the SDK suite"
    assert app.key == f"sdkkey{SFX}"
    assert app.owner is True
    assert "admin" in app.roles or "read" in app.roles
    assert app.create_time and app.update_time
    assert "Sdk-Secret-1234" not in app.raw_content.decode()


def test_app_list_contains_created_app(client, app):
    # 4.1.2
    r = client.list_roma_app(ListRomaAppRequest(instance_id=INSTANCE, offset=0, limit=100))
    assert r.total >= 1 and r.size == len(r.apps)
    mine = [a for a in r.apps if a.id == app.id]
    assert len(mine) == 1 and mine[0].name == APP_NAME and mine[0].key == app.key


def test_app_show_returns_details(client, app):
    # 4.1.4
    r = client.check_roma_app_details(CheckRomaAppDetailsRequest(instance_id=INSTANCE, app_id=app.id))
    assert (r.id, r.name, r.remark, r.key) == (app.id, APP_NAME, app.remark, app.key)


def test_app_update_changes_remark_and_favorite(client):
    # 4.1.5, on an app of its own
    created = client.create_roma_app(
        CreateRomaAppRequest(instance_id=INSTANCE, body=CreateAppReq(name=f"sdk-upd-{SFX}"))
    )
    r = client.update_roma_app(
        UpdateRomaAppRequest(
            instance_id=INSTANCE,
            app_id=created.id,
            body=UpdateAppReq(name=f"sdk-upd2-{SFX}", remark="updated", favorite=True),
        )
    )
    assert (r.id, r.name, r.remark, r.favorite) == (created.id, f"sdk-upd2-{SFX}", "updated", True)
    shown = client.check_roma_app_details(CheckRomaAppDetailsRequest(instance_id=INSTANCE, app_id=created.id))
    assert (shown.name, shown.remark) == (f"sdk-upd2-{SFX}", "updated")


def test_app_delete_removes_app(client):
    # 4.1.6
    created = client.create_roma_app(
        CreateRomaAppRequest(instance_id=INSTANCE, body=CreateAppReq(name=f"sdk-del-{SFX}"))
    )
    r = client.delete_roma_app(DeleteRomaAppRequest(instance_id=INSTANCE, app_id=created.id))
    assert r.status_code in (200, 204)
    expect_error(
        lambda: client.check_roma_app_details(CheckRomaAppDetailsRequest(instance_id=INSTANCE, app_id=created.id)),
        404,
        "FDI.3435",
    )


def test_validate_apps_by_name_returns_the_app(client, app):
    # Known gap 4: 4.1.1 GET /v2/{project_id}/instances/{instance_id}/validate-apps?name=
    # answers 200 with table 4-4 {id, name, remark} of the matching app.
    r = client.validate_roma_app(ValidateRomaAppRequest(instance_id=INSTANCE, name=APP_NAME))
    assert r.status_code == 200
    assert (r.id, r.name, r.remark) == (app.id, APP_NAME, app.remark)


def test_validate_apps_by_id_and_key_returns_the_app(client, app):
    # Known gap 4: 4.1.1, table 4-2 query parameters id and key.
    r = client.validate_roma_app(ValidateRomaAppRequest(instance_id=INSTANCE, id=app.id))
    assert (r.id, r.name) == (app.id, APP_NAME)
    r = client.validate_roma_app(ValidateRomaAppRequest(instance_id=INSTANCE, key=app.key))
    assert (r.id, r.name) == (app.id, APP_NAME)


def test_validate_apps_unknown_name_is_404_not_a_missing_route(client):
    # Known gap 4: 4.1.1 answers 404 when no app matches (not "no route").
    e = expect_error_status(
        lambda: client.validate_roma_app(ValidateRomaAppRequest(instance_id=INSTANCE, name=f"nope-{SFX}")),
        404,
    )
    assert "no route" not in (e.error_msg or ""), str(e)


def expect_error_status(fn, status):
    with pytest.raises(ClientRequestException) as ei:
        fn()
    assert ei.value.status_code == status, str(ei.value)
    return ei.value


# ---- datasources ----------------------------------------------------------------------------


def create_ds(client, app, name, ds_type, content, description=None):
    return client.create_datasource_info(
        CreateDatasourceInfoRequest(
            instance_id=INSTANCE,
            body=DatasourceInfo(
                datasource_name=name, datasource_type=ds_type, app_id=app.id, content=content,
                description=description,
            ),
        )
    )


def mysql_content(**over):
    c = dict(host="127.0.0.1", port="3306", database_name="test", user_name="root", password="")
    c.update(over)
    return Content(**c)


def pg_content(**over):
    c = dict(host="127.0.0.1", port="5432", database_name="test", user_name="postgres", password="pg-sdk-pw")
    c.update(over)
    return Content(**c)


@pytest.fixture(scope="session")
def src_ds(client, app, db_tables):
    return create_ds(client, app, f"sdk-src-{SFX}", "SQLITE", Content(url="src.sqlite"), "copy source")


@pytest.fixture(scope="session")
def dst_ds(client, app, db_tables):
    return create_ds(client, app, f"sdk-dst-{SFX}", "SQLITE", Content(url="dst.sqlite"))


@pytest.fixture(scope="session")
def mysql_ds(client, app, db_tables):
    return create_ds(client, app, f"sdk-mysql-{SFX}", "MYSQL", mysql_content())


@pytest.fixture(scope="session")
def pg_ds(client, app, db_tables):
    return create_ds(client, app, f"sdk-pg-{SFX}", "POSTGRESQL", pg_content())


def test_datasource_create_sqlite_returns_datasource(src_ds, app):
    # 5.1.1
    assert src_ds.status_code == 201
    assert src_ds.datasource_id
    assert (src_ds.datasource_name, src_ds.datasource_type) == (f"sdk-src-{SFX}", "SQLITE")
    assert (src_ds.app_id, src_ds.app_name, src_ds.instance_id) == (app.id, APP_NAME, INSTANCE)
    assert src_ds.content.url == "src.sqlite"
    assert src_ds.description == "copy source"
    assert isinstance(src_ds.create_time, int) and src_ds.create_time > 0
    assert isinstance(src_ds.update_time, int) and src_ds.update_time >= src_ds.create_time


def test_datasource_create_postgresql_masks_password(pg_ds):
    # 5.1.1; secrets are write-only (docs/api-decisions.md)
    assert pg_ds.datasource_type == "POSTGRESQL"
    c = pg_ds.content
    assert (c.host, c.port, c.database_name, c.user_name) == ("127.0.0.1", "5432", "test", "postgres")
    assert c.password != "pg-sdk-pw"
    assert "pg-sdk-pw" not in pg_ds.raw_content.decode()


def test_datasource_list_filters_by_type_and_name(client, src_ds, dst_ds, mysql_ds):
    # 5.1.2
    r = client.list_datasources(ListDatasourcesRequest(instance_id=INSTANCE, datasource_type="SQLITE", limit=100))
    assert r.size == len(r.entities)
    ids = {e.datasource_id for e in r.entities}
    assert {src_ds.datasource_id, dst_ds.datasource_id} <= ids
    assert mysql_ds.datasource_id not in ids
    assert all(e.datasource_type == "SQLITE" for e in r.entities)
    r = client.list_datasources(ListDatasourcesRequest(instance_id=INSTANCE, name=f"sdk-src-{SFX}"))
    assert [e.datasource_id for e in r.entities] == [src_ds.datasource_id]
    assert r.total == 1


def test_datasource_list_pages_with_offset_and_limit(client, src_ds, dst_ds, mysql_ds, pg_ds):
    # 5.1.2: offset = rows skipped
    every = client.list_datasources(ListDatasourcesRequest(instance_id=INSTANCE, limit=100))
    assert every.total >= 4
    page = client.list_datasources(ListDatasourcesRequest(instance_id=INSTANCE, offset=1, limit=2))
    assert page.size == 2 and page.total == every.total
    assert [e.datasource_id for e in page.entities] == [e.datasource_id for e in every.entities[1:3]]


def test_datasource_list_negative_offset_behaves_like_zero(client, src_ds, dst_ds, mysql_ds, pg_ds):
    # Known gap 5: 5.1.2 table 5-14, offset: "偏移量小于0时，自动转换为0" (a negative offset becomes 0).
    zero = client.list_datasources(ListDatasourcesRequest(instance_id=INSTANCE, offset=0, limit=3))
    neg = client.list_datasources(ListDatasourcesRequest(instance_id=INSTANCE, offset=-1, limit=3))
    assert neg.total == zero.total
    assert [e.datasource_id for e in neg.entities] == [e.datasource_id for e in zero.entities]


def test_datasource_show_returns_datasource(client, src_ds):
    # 5.1.3
    r = client.show_dataource_detail(
        ShowDataourceDetailRequest(instance_id=INSTANCE, datasource_id=src_ds.datasource_id)
    )
    assert (r.datasource_id, r.datasource_name, r.datasource_type) == (
        src_ds.datasource_id, src_ds.datasource_name, "SQLITE")
    assert (r.app_id, r.app_name, r.content.url) == (src_ds.app_id, APP_NAME, "src.sqlite")


def test_datasource_update_changes_name_and_description(client, app, db_tables):
    # 5.1.4
    ds = create_ds(client, app, f"sdk-upd-{SFX}", "SQLITE", Content(url="src.sqlite"))
    r = client.update_datasource_info(
        UpdateDatasourceInfoRequest(
            instance_id=INSTANCE,
            datasource_id=ds.datasource_id,
            body=DatasourceInfo(
                datasource_name=f"sdk-upd2-{SFX}", datasource_type="SQLITE", app_id=app.id,
                content=Content(url="dst.sqlite"), description="updated by the SDK",
            ),
        )
    )
    assert (r.datasource_id, r.datasource_name, r.description) == (
        ds.datasource_id, f"sdk-upd2-{SFX}", "updated by the SDK")
    assert r.content.url == "dst.sqlite"
    assert r.update_time >= ds.update_time
    shown = client.show_dataource_detail(
        ShowDataourceDetailRequest(instance_id=INSTANCE, datasource_id=ds.datasource_id))
    assert (shown.datasource_name, shown.content.url) == (f"sdk-upd2-{SFX}", "dst.sqlite")


def test_datasource_delete_removes_it(client, app, db_tables):
    # 5.1.5
    ds = create_ds(client, app, f"sdk-del-{SFX}", "SQLITE", Content(url="src.sqlite"))
    r = client.delete_datasource_info_by_id(
        DeleteDatasourceInfoByIdRequest(instance_id=INSTANCE, datasource_id=ds.datasource_id))
    assert r.status_code in (200, 204)
    expect_error(
        lambda: client.show_dataource_detail(
            ShowDataourceDetailRequest(instance_id=INSTANCE, datasource_id=ds.datasource_id)),
        404,
        "FDI.3101",
    )


def test_datasource_tables_lists_matching_tables(client, src_ds):
    # 5.1.6 (the SDK sends the direction as `position`)
    r = client.list_datasource_tables(
        ListDatasourceTablesRequest(instance_id=INSTANCE, datasource_id=src_ds.datasource_id, position="SOURCE"))
    assert sorted(r.tables) == ["people", "pets"]
    r = client.list_datasource_tables(
        ListDatasourceTablesRequest(instance_id=INSTANCE, datasource_id=src_ds.datasource_id,
                                    position="SOURCE", filter="PEOP"))
    assert r.tables == ["people"]


def columns_by_name(resp):
    return {c.field_name: c for c in resp.columns}


def list_columns(client, ds, table):
    return client.list_datasource_columns(
        ListDatasourceColumnsRequest(instance_id=INSTANCE, datasource_id=ds.datasource_id,
                                     position="SOURCE", table_name=table))


def test_datasource_columns_sqlite(client, src_ds):
    # 5.1.7, table 5-60
    r = list_columns(client, src_ds, "people")
    assert [c.field_name for c in r.columns] == ["id", "name", "score"]
    cols = columns_by_name(r)
    assert (cols["id"].primary, cols["id"].null_able) == ("1", "0")
    assert (cols["name"].primary, cols["name"].null_able) == ("0", "0")
    assert cols["score"].null_able == "1"
    assert all(c.is_partition is False for c in r.columns)


def test_datasource_columns_mysql(client, mysql_ds):
    # 5.1.7, table 5-60: strings "1"/"0", lengths and digits as strings
    r = list_columns(client, mysql_ds, MY_TABLE)
    assert [c.field_name for c in r.columns] == ["id", "code", "price", "created", "updated", "note"]
    cols = columns_by_name(r)
    assert (cols["id"].primary, cols["id"].null_able, cols["id"].unique) == ("1", "0", "0")
    assert (cols["code"].primary, cols["code"].null_able, cols["code"].unique) == ("0", "0", "1")
    assert cols["code"].field_length == "40" and cols["code"].decimal_digits is None
    assert (cols["price"].field_length, cols["price"].decimal_digits, cols["price"].null_able) == ("10", "3", "1")
    assert all(c.is_partition is False for c in r.columns)


def test_datasource_columns_mysql_datetime_field_length_zero_and_decimal_digits_null(client, mysql_ds):
    # Known gap 6: 5.1.7 table 5-60: field_length is a string (minimum 0), decimal_digits
    # "非数字类型返回null" (null for non-numeric types); the reference's own column lists
    # (5.3.1 request example) give a TIMESTAMP(6) column "field_length":"0".
    cols = columns_by_name(list_columns(client, mysql_ds, MY_TABLE))
    for name in ("created", "updated"):  # DATETIME, TIMESTAMP(6)
        c = cols[name]
        assert c.field_length == "0", f"{name}: field_length={c.field_length!r}"
        assert c.decimal_digits is None, f"{name}: decimal_digits={c.decimal_digits!r}"


def test_datasource_columns_postgresql(client, pg_ds):
    # 5.1.7
    r = list_columns(client, pg_ds, PG_TABLE)
    assert [c.field_name for c in r.columns] == ["id", "label", "amount", "at"]
    cols = columns_by_name(r)
    assert (cols["id"].primary, cols["id"].null_able) == ("1", "0")
    assert (cols["label"].primary, cols["label"].null_able, cols["label"].field_length) == ("0", "0", "30")
    assert (cols["amount"].field_length, cols["amount"].decimal_digits) == ("12", "4")


def test_datasource_test_connect_stored_definition(client, mysql_ds, pg_ds, src_ds):
    # 5.1.8: an empty body tests the stored datasource
    for ds in (mysql_ds, pg_ds, src_ds):
        r = client.start_test_datasource(
            StartTestDatasourceRequest(instance_id=INSTANCE, datasource_id=ds.datasource_id, body=DatasourceInfo()))
        assert r.result is True, ds.datasource_type


def test_datasource_test_connect_unreachable_port_fails_fdi_3016(client, mysql_ds):
    # 5.1.8 / 11.4.2: FDI.3016 "Failed to test the connectivity."
    expect_error(
        lambda: client.start_test_datasource(
            StartTestDatasourceRequest(
                instance_id=INSTANCE, datasource_id=mysql_ds.datasource_id,
                body=DatasourceInfo(datasource_type="MYSQL", content=mysql_content(port="1")),
            )),
        400,
        "FDI.3016",
    )


def test_test_sql_returns_result_columns(client, src_ds):
    # 5.1.9 via call_api
    r = run_test_sql(client, src_ds.datasource_id, "SELECT id, name, score FROM people")
    assert r.status_code == 200
    assert [c.field_name for c in r.columns] == ["id", "name", "score"]


def test_test_sql_invalid_sql_is_fdi_3035(client, src_ds):
    # 5.1.9 / 11.4.2: FDI.3035 "Invalid SQL statement."
    expect_error(lambda: run_test_sql(client, src_ds.datasource_id, "SELEC nothing FROM nowhere"), 400, "FDI.3035")


def test_test_sql_mysql_reports_not_null_primary_key(client, mysql_ds):
    # Known gap 6: 5.1.9 table 5-77 ColumnInfo carries null_able / primary as in 5.1.7; a query
    # over a table whose `id` is NOT NULL PRIMARY KEY reports them as the columns endpoint does.
    cols = columns_by_name(run_test_sql(client, mysql_ds.datasource_id, f"SELECT id, code, price FROM {MY_TABLE}"))
    assert (cols["id"].null_able, cols["id"].primary) == ("0", "1")
    assert (cols["code"].null_able, cols["code"].primary) == ("0", "0")
    assert (cols["price"].null_able, cols["price"].primary) == ("1", "0")


def test_test_sql_postgresql_reports_not_null_primary_key(client, pg_ds):
    # Known gap 6: 5.1.9 table 5-77, as above for PostgreSQL.
    cols = columns_by_name(run_test_sql(client, pg_ds.datasource_id, f"SELECT id, label, amount FROM {PG_TABLE}"))
    assert (cols["id"].null_able, cols["id"].primary) == ("0", "1")
    assert (cols["label"].null_able, cols["label"].primary) == ("0", "0")
    assert (cols["amount"].null_able, cols["amount"].primary) == ("1", "0")


# ---- tasks ----------------------------------------------------------------------------------

COPY_DETAIL = json.dumps(
    {"sourceSelectedDatasource": {"sourceTable": "people"},
     "targetSelectedDatasource": {"targetTable": "people_copy"}}
)


def create_task(client, name, src, dst, detail=COPY_DETAIL, task_type="TIMING", **task):
    return client.create_common_task(
        CreateCommonTaskRequest(
            instance_id=INSTANCE,
            body=CreateCommonTaskRequestBody(
                task=TaskBasicRequestBody(
                    task_name=name, task_type=task_type,
                    source_datasource_id=src.datasource_id, target_datasource_id=dst.datasource_id,
                    **task,
                ),
                task_detail=detail,
            ),
        )
    )


@pytest.fixture(scope="session")
def copy_task(client, src_ds, dst_ds):
    return create_task(client, f"sdk_copy_{SFX}", src_ds, dst_ds, description="copy people", task_tag="sdk_tag")


@pytest.fixture(scope="session")
def sched_task(client, src_ds, dst_ds):
    """A TIMING task for dispatch plans and batch start/stop; it never runs during the suite."""
    return create_task(client, f"sdk_sched_{SFX}", src_ds, dst_ds)


@pytest.fixture(scope="session")
def updated_task(client, src_ds, dst_ds):
    created = create_task(client, f"sdk_upd_{SFX}", src_ds, dst_ds, description="before")
    return client.update_task(
        UpdateTaskRequest(
            instance_id=INSTANCE,
            task_id=created.task.task_id,
            body=CreateCommonTaskRequestBody(
                task=TaskBasicRequestBody(
                    task_name=f"sdk_upd_{SFX}", task_type="TIMING",
                    source_datasource_id=src_ds.datasource_id, target_datasource_id=dst_ds.datasource_id,
                    description="after", task_tag="sdk_tag2",
                ),
                task_detail=COPY_DETAIL,
            ),
        )
    )


@pytest.fixture(scope="session")
def shown_task(client, copy_task):
    return client.show_task(ShowTaskRequest(instance_id=INSTANCE, task_id=copy_task.task.task_id))


def test_task_create_returns_task_basic_rsp(copy_task, src_ds, dst_ds, app):
    # 5.3.1, table 5-111
    assert copy_task.status_code == 200
    t = copy_task.task
    assert t.task_id
    assert (t.task_name, t.task_type, t.status) == (f"sdk_copy_{SFX}", "timing", "stop")
    assert (t.source_datasource_id, t.target_datasource_id) == (src_ds.datasource_id, dst_ds.datasource_id)
    assert (t.source_datasource_name, t.target_datasource_name) == (src_ds.datasource_name, dst_ds.datasource_name)
    assert (t.source_app_id, t.target_app_id) == (app.id, app.id)
    assert (t.source_app_name, t.target_app_name) == (APP_NAME, APP_NAME)
    assert (t.description, t.task_tag) == ("copy people", "sdk_tag")
    assert isinstance(t.created_date, int) and t.created_date > 0
    assert isinstance(t.last_modified_date, int) and t.last_modified_date >= t.created_date
    assert json.loads(copy_task.task_detail) == json.loads(COPY_DETAIL)


def test_task_create_last_modified_date_equals_created_date(copy_task):
    # 5.3.1 response example: a new task has "created_date" == "last_modified_date"
    # (1605288733684 both); a task never modified has no later modification time.
    created, modified = copy_task.task.created_date, copy_task.task.last_modified_date
    assert modified == created


def test_task_create_response_has_project_id(copy_task):
    # Known gap 2: 5.3.1 table 5-111 TaskBasicRsp.project_id (example: "project_id" : "c536...").
    project_id = copy_task.task.project_id
    assert project_id == PROJECT


def test_task_show_returns_task(shown_task, copy_task):
    # 5.3.5
    t = shown_task.task
    assert (t.task_id, t.task_name, t.task_type) == (copy_task.task.task_id, f"sdk_copy_{SFX}", "timing")
    assert (t.source_datasource_id, t.target_datasource_id) == (
        copy_task.task.source_datasource_id, copy_task.task.target_datasource_id)
    assert (t.description, t.task_tag) == ("copy people", "sdk_tag")
    assert json.loads(shown_task.task_detail) == json.loads(COPY_DETAIL)


def test_task_show_response_has_project_id(shown_task):
    # Known gap 2: 5.3.5 answers TaskBasicRsp, which carries project_id (table 5-111).
    project_id = shown_task.task.project_id
    assert project_id == PROJECT


def test_task_update_changes_description_and_tag(updated_task):
    # 5.3.4
    t = updated_task.task
    assert (t.task_name, t.description, t.task_tag) == (f"sdk_upd_{SFX}", "after", "sdk_tag2")
    assert t.last_modified_date >= t.created_date
    assert json.loads(updated_task.task_detail) == json.loads(COPY_DETAIL)


def test_task_update_response_has_project_id(updated_task):
    # Known gap 2: 5.3.4 answers TaskBasicRsp, which carries project_id (table 5-111).
    project_id = updated_task.task.project_id
    assert project_id == PROJECT


def test_task_list_contains_tasks(client, copy_task, sched_task):
    # 5.3.2, table 5-119 BriefTaskRespBean
    r = client.list_tasks(ListTasksRequest(instance_id=INSTANCE, offset=1, limit=100))
    assert r.total >= 2 and r.size == len(r.entities)
    mine = {e.task_id: e for e in r.entities}
    e = mine[copy_task.task.task_id]
    assert (e.task_name, e.task_type, e.status) == (f"sdk_copy_{SFX}", "TIMING", 0)
    assert (e.source_app_id, e.target_app_id) == (copy_task.task.source_app_id, copy_task.task.target_app_id)
    assert (e.source_instance_id, e.target_instance_id) == (INSTANCE, INSTANCE)
    assert e.task_tag == "sdk_tag"
    assert isinstance(e.last_modified_time, int)
    assert e.execute_status in ("UNSTARTED", "WAITING", "RUNNING", "SUCCESS", "CANCELLED", "ERROR")
    # created_date: the SDK model types it `date`; the reference example (5.3.2) is a string of
    # epoch ms ("1605288733684"), which the SDK leaves as the string.
    assert str(e.created_date) == str(copy_task.task.created_date)


def test_task_list_filtered_by_task_id(client, copy_task, sched_task):
    # 5.3.2 task_id filter
    r = client.list_tasks(ListTasksRequest(instance_id=INSTANCE, task_id=copy_task.task.task_id))
    assert [e.task_id for e in r.entities] == [copy_task.task.task_id]


def test_task_list_filtered_by_name(client, copy_task, sched_task):
    # Known gap 1: the SDK's ListTasksRequest.name is sent as `?name=` (5.3.2 names the fuzzy task
    # name filter task_name); it must filter: only tasks whose name matches come back.
    r = client.list_tasks(ListTasksRequest(instance_id=INSTANCE, name=f"sdk_copy_{SFX}", limit=100))
    assert [e.task_id for e in r.entities] == [copy_task.task.task_id]
    assert r.total == 1


def test_task_list_entries_have_enterprise_project_id(client, copy_task):
    # Known gap 3: 5.3.2 table 5-119 enterprise_project_id; the example has "0" (and 5.2.1 says
    # the default enterprise project is 0).
    r = client.list_tasks(ListTasksRequest(instance_id=INSTANCE, limit=100))
    assert r.entities
    assert all(e.enterprise_project_id == "0" for e in r.entities), [
        (e.task_name, e.enterprise_project_id) for e in r.entities]


def test_task_delete_removes_it(client, src_ds, dst_ds):
    # 5.3.6
    t = create_task(client, f"sdk_del_{SFX}", src_ds, dst_ds)
    r = client.delete_task(DeleteTaskRequest(instance_id=INSTANCE, task_id=t.task.task_id))
    assert r.status_code in (200, 204)
    expect_error(
        lambda: client.show_task(ShowTaskRequest(instance_id=INSTANCE, task_id=t.task.task_id)), 404, "FDI.3081")


def test_task_create_duplicate_name_is_fdi_3058(client, copy_task, src_ds, dst_ds):
    # 11.4.2 FDI.3058 "The task name already exists."
    expect_error(lambda: create_task(client, f"sdk_copy_{SFX}", src_ds, dst_ds), 400, "FDI.3058")


def test_task_show_unknown_is_fdi_3081(client):
    # 11.4.2 FDI.3081 (404) "The task does not exist."
    expect_error(lambda: client.show_task(ShowTaskRequest(instance_id=INSTANCE, task_id="no-such-task")),
                 404, "FDI.3081")


# ---- runs and monitoring --------------------------------------------------------------------


def monitor_logs(client, task_id):
    r = client.list_monitor_log(
        ListMonitorLogRequest(instance_id=INSTANCE, task_id=task_id, offset=1, limit=100))
    return r.entities or []


def wait_run(client, task_id, tracking_id=None, until=TERMINAL, timeout=180):
    deadline = time.time() + timeout
    while True:
        logs = monitor_logs(client, task_id)
        run = next((e for e in logs if e.id == tracking_id), None) if tracking_id else (logs[0] if logs else None)
        if run is not None and run.execute_status in until:
            return run
        assert time.time() < deadline, f"run of {task_id} not {until} in time: {logs}"
        time.sleep(0.3)


@pytest.fixture(scope="session")
def copy_run(client, copy_task, server):
    task_id = copy_task.task.task_id
    r = client.run_task(RunTaskRequest(instance_id=INSTANCE, task_id=task_id))
    assert r.status_code == 200
    # RunTaskResponse has no fields in the SDK; fdi's body carries the run's tracking id.
    tracking = (r.to_json_object() or {}).get("tracking_id")
    run = wait_run(client, task_id, tracking)
    return {"response": r, "tracking_id": tracking, "run": run}


def test_run_copies_rows_to_target(copy_run, server):
    # 5.3.7: the manual run copies every row (count and checksum equal to the source's)
    assert copy_run["run"].execute_status == "SUCCESS", copy_run["run"]
    src = sqlite_digest(os.path.join(server.files, "src.sqlite"), "people")
    dst = sqlite_digest(os.path.join(server.files, "dst.sqlite"), "people_copy")
    assert src[0] == COPY_ROWS
    assert dst == src


def test_monitor_log_reports_the_run(copy_run):
    # 5.2.2, table 5-91 TaskMonitorLog
    run = copy_run["run"]
    if copy_run["tracking_id"]:
        assert run.id == copy_run["tracking_id"]
    assert run.execute_status == "SUCCESS"
    assert (run.data_count, run.dirty_data_count) == (COPY_ROWS, 0)
    assert run.status == 901 and run.position_status == "TASK_END"
    assert run.data_size > 0 and run.data_size_unit in ("B", "KB", "MB", "GB")
    assert run.start_time <= run.end_time
    assert run.dispatch_time and run.spend_time >= 0
    assert run.read_spend_time is not None and run.write_spend_time is not None
    statuses = [s.status for s in run.detail_logs]
    for code in (900, 99, 100, 102, 104, 101, 500, 502, 504, 501, 901):
        assert code in statuses, (code, statuses)
    assert statuses[0] == 900 and statuses[-1] == 901
    for s in run.detail_logs:
        assert s.id and s.position in ("ADAPTER", "READER", "WRITER") and s.stage
        assert s.step_begin_time <= s.step_end_time
    writer_end = next(s for s in run.detail_logs if s.status == 504)
    assert writer_end.data_count == COPY_ROWS


def test_monitor_log_reading_step_reports_data_size(copy_run):
    # Known gap 7: 5.2.2 table 5-92: data_size is the size of the rows a step handled; step 102
    # ("正在读取数据", reading) with a non-zero data_count must report a non-zero data_size.
    reading = [s for s in copy_run["run"].detail_logs if s.status == 102]
    assert reading, "no step 102"
    for s in reading:
        assert s.data_count > 0
        assert s.data_size > 0, f"step 102: data_count={s.data_count} data_size={s.data_size} {s.data_size_unit}"


def test_monitor_log_filtered_by_time(client, copy_task, copy_run):
    # 5.2.2 begin_time / end_time
    run = copy_run["run"]
    r = client.list_monitor_log(ListMonitorLogRequest(
        instance_id=INSTANCE, task_id=copy_task.task.task_id, begin_time=run.start_time, end_time=run.start_time))
    assert [e.id for e in r.entities] == [run.id]
    r = client.list_monitor_log(ListMonitorLogRequest(
        instance_id=INSTANCE, task_id=copy_task.task.task_id, begin_time=run.start_time + 1))
    assert r.entities == [] and r.total == 0


def test_monitor_log_detail_via_call_api(client, copy_task, copy_run):
    # 5.2.3 GET tasks/{task_id}/monitor-logs/{tracking_id} (no SDK method), table 5-98
    run = copy_run["run"]
    r = call(client, "GET", FDI_PREFIX + "/tasks/{task_id}/monitor-logs/{tracking_id}", MonitorLogDetailResponse,
             task_id=copy_task.task.task_id, tracking_id=run.id)
    assert r.status_code == 200
    assert (r.id, r.dirty_data_count) == (run.id, 0)
    assert r.execute_status == "SUCCESS"
    assert [s.status for s in r.detail_logs] == [s.status for s in run.detail_logs]
    assert [s.id for s in r.detail_logs] == [s.id for s in run.detail_logs]


def test_monitor_log_detail_unknown_tracking_id_is_404(client, copy_task):
    # 5.2.3: 404 for an unknown tracking id
    e = expect_error_status(
        lambda: call(client, "GET", FDI_PREFIX + "/tasks/{task_id}/monitor-logs/{tracking_id}",
                     MonitorLogDetailResponse, task_id=copy_task.task.task_id, tracking_id="no-such-run"),
        404)
    assert e.error_code.startswith("FDI.")


def test_monitor_overview_via_call_api(client, copy_task, copy_run):
    # 5.2.4 GET tasks/{task_id}/monitor-overview (no SDK method), table 5-105
    r = call(client, "GET", FDI_PREFIX + "/tasks/{task_id}/monitor-overview", MonitorOverviewResponse,
             task_id=copy_task.task.task_id)
    assert r.task_name == f"sdk_copy_{SFX}"
    assert (r.total_num, r.success_num, r.error_num, r.running_num, r.cancel_num) == (1, 1, 0, 0, 0)


def test_task_monitors_list_shows_last_run(client, copy_task, copy_run):
    # 5.2.1, table 5-84 TaskMonitorInfo
    r = client.list_monitor_infos(ListMonitorInfosRequest(instance_id=INSTANCE, task_name=f"sdk_copy_{SFX}"))
    assert r.total == 1 and r.size == 1
    m = r.entities[0]
    assert (m.task_id, m.task_name, m.task_type, m.status) == (
        copy_task.task.task_id, f"sdk_copy_{SFX}", "TIMING", 0)
    assert m.execute_status == "SUCCESS"
    assert m.last_execute_time == copy_run["run"].start_time
    assert m.position in ("ADAPTER", "READER", "WRITER")
    assert (m.source_app_name, m.target_app_name) == (APP_NAME, APP_NAME)
    assert (m.source_instance_id, m.target_instance_id) == (INSTANCE, INSTANCE)
    assert m.enterprise_project_id == "0"
    r = client.list_monitor_infos(
        ListMonitorInfosRequest(instance_id=INSTANCE, task_name=f"sdk_copy_{SFX}", execute_status="ERROR"))
    assert r.entities == [] and r.total == 0


def test_statistics_count_the_completed_task(client, copy_run):
    # 5.3.3, table 5-126
    r = client.count_tasks(CountTasksRequest(instance_id=INSTANCE))
    c = r.common_task_details
    assert c.completed_tasks_count >= 1
    assert min(c.running_tasks_count, c.abnormal_tasks_count, c.terminated_tasks_count) >= 0
    d = r.cdc_task_details
    assert (d.running_tasks_count, d.abnormal_tasks_count, d.terminated_tasks_count, d.completed_tasks_count) == (
        0, 0, 0, 0)


def test_terminate_without_a_run_is_fdi_3027(client, copy_task, copy_run):
    # 5.3.8 / 11.4.2 FDI.3027 "Failed to manually stop the task."
    expect_error(lambda: client.stop_task(StopTaskRequest(instance_id=INSTANCE, task_id=copy_task.task.task_id)),
                 400, "FDI.3027")


def test_terminate_stops_a_running_realtime_run(client, app, db_tables):
    # 5.3.12 batch start of a REALTIME task, then 5.3.8 terminate of its running run
    rt_src = create_ds(client, app, f"sdk-rt-src-{SFX}", "SQLITE", Content(url="rt_src.sqlite"))
    rt_dst = create_ds(client, app, f"sdk-rt-dst-{SFX}", "SQLITE", Content(url="rt_dst.sqlite"))
    detail = json.dumps({
        "sourceSelectedDatasource": {
            "sourceTable": "events", "need_inc_migration": True, "sourceDateColumn": "updated_at",
            "dataTimestamp": int(time.time() * 1000) - 3600 * 1000, "compensation_time": 0, "timeZone": "UTC"},
        "targetSelectedDatasource": {"targetTable": "events_copy", "supportPartUpdate": True},
    })
    task = create_task(client, f"sdk_rt_{SFX}", rt_src, rt_dst, detail=detail, task_type="REALTIME")
    task_id = task.task.task_id
    assert task.task.task_type == "realtime"
    try:
        r = client.batch_start_or_stop_tasks(BatchStartOrStopTasksRequest(
            instance_id=INSTANCE, body=OperateTasksBean(action_id="start", list=[TaskBean(task_id=task_id)])))
        assert (r.success_count, r.failure_count) == (1, 0), r
        running = wait_run(client, task_id, until=("RUNNING",), timeout=60)
        r = client.stop_task(StopTaskRequest(instance_id=INSTANCE, task_id=task_id))
        assert r.message == "success"
        ended = wait_run(client, task_id, running.id, timeout=60)
        assert ended.execute_status == "CANCELLED", ended
    finally:
        r = client.batch_start_or_stop_tasks(BatchStartOrStopTasksRequest(
            instance_id=INSTANCE, body=OperateTasksBean(action_id="stop", list=[TaskBean(task_id=task_id)])))
        assert r.success_count == 1, r


# ---- dispatch plans and batch start/stop ----------------------------------------------------

PLAN_START = (int(time.time()) + 7 * 86400) * 1000  # a week ahead: the plan never fires during the suite


@pytest.fixture(scope="session")
def sched_plan(client, sched_task):
    return client.create_dispatches(CreateDispatchesRequest(
        instance_id=INSTANCE, task_id=sched_task.task.task_id,
        body=TaskDispatch(start_datetime=PLAN_START, period="DAY", dispatch_interval=1,
                          use_quartz_cron=False, remark="sdk plan"),
    ))


def test_dispatch_create_returns_plan(sched_plan, sched_task):
    # 5.3.9
    p = sched_plan
    assert p.dispatch_id
    assert (p.task_id, p.start_datetime) == (sched_task.task.task_id, PLAN_START)
    assert (p.use_quartz_cron, p.period, p.dispatch_interval, p.remark) == (False, "DAY", 1, "sdk plan")
    assert isinstance(p.created_date, int) and isinstance(p.last_modified_date, int)


def test_dispatch_show_returns_plan(client, sched_plan, sched_task):
    # 5.3.10
    p = client.show_dispatches(ShowDispatchesRequest(instance_id=INSTANCE, task_id=sched_task.task.task_id))
    assert (p.dispatch_id, p.task_id, p.start_datetime) == (
        sched_plan.dispatch_id, sched_task.task.task_id, PLAN_START)
    if p.use_quartz_cron:  # the update test may have run first
        assert p.cron == "0 0 3 * * ?"
    else:
        assert (p.period, p.dispatch_interval) == ("DAY", 1)


def test_dispatch_show_without_plan_is_fdi_3109(client, copy_task):
    # 5.3.10 / 11.4.2 FDI.3109 (404)
    expect_error(lambda: client.show_dispatches(ShowDispatchesRequest(
        instance_id=INSTANCE, task_id=copy_task.task.task_id)), 404, "FDI.3109")


def test_dispatch_update_to_quartz_cron(client, sched_plan, sched_task):
    # 5.3.11
    p = client.update_dispatches(UpdateDispatchesRequest(
        instance_id=INSTANCE, task_id=sched_task.task.task_id, dispatch_id=sched_plan.dispatch_id,
        body=TaskDispatch(start_datetime=PLAN_START, use_quartz_cron=True, cron="0 0 3 * * ?", remark="cron"),
    ))
    assert (p.dispatch_id, p.use_quartz_cron, p.cron, p.remark) == (
        sched_plan.dispatch_id, True, "0 0 3 * * ?", "cron")
    shown = client.show_dispatches(ShowDispatchesRequest(instance_id=INSTANCE, task_id=sched_task.task.task_id))
    assert (shown.use_quartz_cron, shown.cron) == (True, "0 0 3 * * ?")


def test_dispatch_invalid_cron_is_rejected(client, sched_plan, sched_task):
    # 5.3.11: an invalid cron is refused with an FDI error
    e = expect_error_status(lambda: client.update_dispatches(UpdateDispatchesRequest(
        instance_id=INSTANCE, task_id=sched_task.task.task_id, dispatch_id=sched_plan.dispatch_id,
        body=TaskDispatch(use_quartz_cron=True, cron="not a cron"),
    )), 400)
    assert e.error_code.startswith("FDI.")


def test_batch_start_and_stop_a_scheduled_task(client, sched_plan, sched_task):
    # 5.3.12
    task_id = sched_task.task.task_id
    r = client.batch_start_or_stop_tasks(BatchStartOrStopTasksRequest(
        instance_id=INSTANCE, body=OperateTasksBean(action_id="start", list=[TaskBean(task_id=task_id)])))
    try:
        assert (r.success_count, r.failure_count) == (1, 0), r
        assert [(s.task_id, s.task_name) for s in r.success] == [(task_id, f"sdk_sched_{SFX}")]
        assert client.show_task(ShowTaskRequest(instance_id=INSTANCE, task_id=task_id)).task.status == "running"
        listed = client.list_tasks(ListTasksRequest(instance_id=INSTANCE, task_id=task_id)).entities
        assert [e.status for e in listed] == [1]
    finally:
        r = client.batch_start_or_stop_tasks(BatchStartOrStopTasksRequest(
            instance_id=INSTANCE, body=OperateTasksBean(action_id="stop", list=[TaskBean(task_id=task_id)])))
    assert (r.success_count, r.failure_count) == (1, 0), r
    assert client.show_task(ShowTaskRequest(instance_id=INSTANCE, task_id=task_id)).task.status == "stop"


def test_batch_start_reports_per_task_failures(client, copy_task):
    # 5.3.12: unknown task -> FDI.3021; TIMING task without a plan -> FDI.3083
    r = client.batch_start_or_stop_tasks(BatchStartOrStopTasksRequest(
        instance_id=INSTANCE,
        body=OperateTasksBean(action_id="start",
                              list=[TaskBean(task_id="no-such-task"), TaskBean(task_id=copy_task.task.task_id)])))
    assert (r.success_count, r.failure_count) == (0, 2), r
    codes = {f.task_id: f.error_code for f in r.failure}
    assert codes == {"no-such-task": "FDI.3021", copy_task.task.task_id: "FDI.3083"}
    assert all(f.error_msg for f in r.failure)


def test_batch_bad_action_is_fdi_3161(client, copy_task):
    # 11.4.2 FDI.3161 "The action must be start or stop."
    expect_error(lambda: client.batch_start_or_stop_tasks(BatchStartOrStopTasksRequest(
        instance_id=INSTANCE,
        body=OperateTasksBean(action_id="pause", list=[TaskBean(task_id=copy_task.task.task_id)]))), 400, "FDI.3161")


# ---- CDC multi-tasks ------------------------------------------------------------------------


def test_multi_tasks_through_the_sdk(client, mysql_ds, pg_ds, app):
    # 5.3.13-5.3.20 with the platform's own SDK: init -> mapping -> create -> update -> list and
    # delete mappings -> reset. (The runs themselves are tested in tests/cdc.rs.)
    init = client.install_multi_tasks(InstallMultiTasksRequest(
        instance_id=INSTANCE,
        body=MultiTaskInitBody(source_datasource_id=mysql_ds.datasource_id,
                               target_datasource_id=pg_ds.datasource_id, auto_mapping=False)))
    assert len(init.body) == 1, init
    element = init.body[0]
    task_id = element.task_id
    assert task_id and element.source_datasource_id == mysql_ds.datasource_id, element
    assert element.mappings_total_count == 0, element
    mapping = client.create_multi_task_mappings(CreateMultiTaskMappingsRequest(
        instance_id=INSTANCE, task_id=task_id,
        body=MultiTaskMappingCreateBody(
            source_datasource_id=mysql_ds.datasource_id, target_datasource_id=pg_ds.datasource_id,
            source_table=MY_TABLE, target_table=PG_TABLE,
            mapping_columns=[MappingInfo(source_column="id", target_column="id")])))
    assert mapping.mapping_id, mapping
    created = client.create_multi_tasks(CreateMultiTasksRequest(
        instance_id=INSTANCE,
        body=MultiTaskRequestBody(task_name=f"sdk_cdc_{SFX}", task_id=task_id, task_type="REALTIME",
                                  operation_types=["INSERT", "UPDATE", "DELETE"])))
    assert created.task_id == task_id, created
    client.update_multi_tasks(UpdateMultiTasksRequest(
        instance_id=INSTANCE, task_id=task_id,
        body=MultiTaskUpdateBody(operation_types=["INSERT"], repulling_snapshot=False)))
    # 5.3.18 has no SDK method: through call_api; the one mapping is listed.
    listed = call(client, "GET", FDI_PREFIX + "/multi-tasks/{task_id}/mappings",
                  MultiTaskMappingsResponse, task_id=task_id)
    assert listed.mappings_total_count == 1, listed
    assert [m.id for m in listed.mappings] == [mapping.mapping_id], listed
    assert [(p.source_column, p.target_column) for p in listed.mappings[0].mapping] == [("id", "id")], listed
    expect_error_status(lambda: client.delete_multi_task_mapping(DeleteMultiTaskMappingRequest(
        instance_id=INSTANCE, task_id=task_id, mapping_id="no-such-mapping")), 404)
    client.delete_multi_task_mapping(DeleteMultiTaskMappingRequest(
        instance_id=INSTANCE, task_id=task_id, mapping_id=mapping.mapping_id))
    # Reset: the machine's MariaDB keeps no binlog, so there is no position to go back to: an FDI
    # error naming date_from, never a 5xx.
    with pytest.raises(ClientRequestException) as ei:
        client.reset_multi_task_offset(ResetMultiTaskOffsetRequest(
            instance_id=INSTANCE, task_id=task_id,
            body=MultiTaskResetBody(date_from=int(time.time() * 1000) - 60_000)))
    assert ei.value.status_code == 400 and ei.value.error_code.startswith("FDI."), str(ei.value)
    assert "date_from" in (ei.value.error_msg or ""), str(ei.value)


# ---- auth -----------------------------------------------------------------------------------


def test_request_without_token_is_401(server):
    # 1.x auth: X-Auth-Token on every call; fdi answers 401 FDI.1001 (docs/api-decisions.md)
    anonymous = make_client(server.base, token=False)
    expect_error(lambda: anonymous.list_tasks(ListTasksRequest(instance_id=INSTANCE)), 401, "FDI.1001")
