"""The management API under ``B server-proxy/`` with a fake supervisor:
``management_route`` (which route for which method and path), ``local_page``
(the answers), ``servers_info`` and ``running_servers`` (jupyter-server-proxy's
shapes).  End to end in ``tests/integration/test_servers.py``."""

from __future__ import annotations

import json

import pytest
from twisted.internet import defer

from cocalcproxy.roles.project.management import local_page, management_route, running_servers, servers_info
from cocalcproxy.routing.types import Local, Reject
from cocalcproxy.supervise.process import RUNNING, STARTING, STOPPED, Target
from cocalcproxy.supervise.spec import parse_server
from tests.support.results import recorded

STARTED = 1_700_000_000.0  # 2023-11-14T22:13:20Z
ACTIVE = 1_700_000_123.5


class Server:
    """The attributes the management API reads of a ``SupervisedServer``."""

    def __init__(self, name: str, state: str = STOPPED, **options):
        options.setdefault("command", ["app", "{port}"])
        self.spec = parse_server(name, options)[0]
        self.state = state
        self.pid = None
        self.target = None
        self.started = None
        self.last_activity = None
        self.stops: list[defer.Deferred] = []

    def run(self, pid: int, port: int | None = None, unix_socket: str | None = None) -> "Server":
        self.state = RUNNING
        self.pid = pid
        self.target = Target(port, unix_socket)
        self.started = STARTED
        self.last_activity = ACTIVE
        return self

    def stop(self) -> defer.Deferred:
        d = defer.Deferred()
        self.stops.append(d)
        return d


class Supervisor:
    def __init__(self, *servers: Server):
        self.servers = {s.spec.name: s for s in servers}


@pytest.fixture
def icon(tmp_path):
    path = tmp_path / "lab.svg"
    path.write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    return str(path)


@pytest.fixture
def sup(icon):
    return Supervisor(
        Server("lab", launcher_entry={"title": "JupyterLab", "icon_path": icon, "category": "Notebook"}).run(101, 9001),
        Server("code", new_browser_tab=False, launcher_entry={"enabled": False}),
        Server("sock", unix_socket=True).run(102, unix_socket="/tmp/x/socket"),
        Server("booting", state=STARTING),
        Server("ext", command=None, port=9999).run(None, 9999),  # not supervised: running, but not ours to list
    )


# ------------------------------------------------------------ management_route


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
def test_read_routes(sup, method):
    assert management_route(b"servers-info", method, sup) == Local("servers-info")
    assert management_route(b"icon/lab", method, sup) == Local("icon", b"lab")
    assert management_route(b"api/servers", method, sup) == Local("api-servers")
    assert management_route(b"api/servers/", method, sup) == Local("api-servers")
    assert management_route(b"api/servers/lab", method, sup) == Local("api-server", b"lab")
    assert management_route(b"api/servers/lab/", method, sup) == Local("api-server", b"lab")


@pytest.mark.parametrize("rest", [b"servers-info", b"icon/lab", b"icon/nosuch", b"api/servers", b"api/servers/"])
@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE"])
def test_get_only_routes_refuse_other_methods(sup, rest, method):
    assert management_route(rest, method, sup) == Reject(405, "Only GET is allowed here.")


def test_icon_of_a_server_without_one_or_of_no_server_is_404(sup):
    assert management_route(b"icon/code", b"GET", sup) == Reject(404, "This server has no icon.")
    assert management_route(b"icon/nosuch", b"GET", sup) == Reject(404, "This server has no icon.")


@pytest.mark.parametrize("name", [b"nosuch", b"code", b"booting", b"ext"])
def test_api_server_is_404_unless_it_is_a_running_supervised_server(sup, name):
    assert management_route(b"api/servers/" + name, b"GET", sup) == Reject(404, "No such running server.")


def test_api_server_with_another_method_is_405(sup):
    assert management_route(b"api/servers/lab", b"PUT", sup) == Reject(405, "Use GET or DELETE.")


def test_delete_stops_the_server_and_answers_when_it_has_ended(sup):
    d = management_route(b"api/servers/lab", b"DELETE", sup)
    got = recorded(d)
    [stopping] = sup.servers["lab"].stops
    assert got == []  # no 204 while the process still runs
    stopping.callback(None)
    assert got == [Local("deleted")]


def test_delete_of_a_stopped_server_still_asks_it_to_stop(sup):
    got = recorded(management_route(b"api/servers/code/", b"DELETE", sup))
    sup.servers["code"].stops[0].callback(None)
    assert got == [Local("deleted")]


def test_delete_of_an_unknown_server_is_404(sup):
    assert management_route(b"api/servers/nosuch", b"DELETE", sup) == Reject(404, "No such server.")


@pytest.mark.parametrize("rest", [b"", b"nothing", b"servers-info/", b"api", b"api/serversx", b"icons/lab"])
def test_other_paths_are_not_management_routes(sup, rest):
    assert management_route(rest, b"GET", sup) is None


# ------------------------------------------------------------ local_page


def json_page(answer):
    status, body, ctype = answer
    assert ctype == b"application/json"
    return status, json.loads(body)


def test_servers_info_lists_every_server_sorted_with_icon_urls_under_the_base(sup):
    status, info = json_page(local_page(Local("servers-info"), sup, "/base/pid/"))
    assert status == 200
    assert info == servers_info(sup, "/base/pid/")
    assert [s["name"] for s in info["server_processes"]] == ["booting", "code", "ext", "lab", "sock"]
    by_name = {s["name"]: s for s in info["server_processes"]}
    assert by_name["lab"] == {
        "name": "lab",
        "launcher_entry": {"enabled": True, "title": "JupyterLab", "path_info": "lab/", "category": "Notebook",
                           "icon_url": "/base/pid/server-proxy/icon/lab"},
        "new_browser_tab": True,
    }
    assert by_name["code"] == {
        "name": "code",
        "launcher_entry": {"enabled": False, "title": "code", "path_info": "code/", "category": "Notebook"},
        "new_browser_tab": False,
    }


def test_running_servers_lists_running_supervised_servers_only(sup):
    status, listing = json_page(local_page(Local("api-servers"), sup, "/"))
    assert status == 200 and listing == running_servers(sup)
    assert listing == [
        {"name": "lab", "pid": 101, "port": 9001, "unix_socket": None,
         "started": "2023-11-14T22:13:20Z", "last_activity": "2023-11-14T22:15:23.500000Z"},
        {"name": "sock", "pid": 102, "port": None, "unix_socket": "/tmp/x/socket",
         "started": "2023-11-14T22:13:20Z", "last_activity": "2023-11-14T22:15:23.500000Z"},
    ]


def test_running_servers_when_none_runs():
    assert running_servers(Supervisor(Server("a"), Server("b", state=STARTING))) == []


def test_api_server_is_the_status_of_one_server(sup):
    status, entry = json_page(local_page(Local("api-server", b"lab"), sup, "/"))
    assert status == 200 and entry == running_servers(sup)[0]


def test_api_server_that_stopped_since_it_was_routed_is_the_standard_404(sup):
    sup.servers["lab"].state = STOPPED
    assert local_page(Local("api-server", b"lab"), sup, "/") is None
    assert local_page(Local("api-server", b"gone"), sup, "/") is None


def test_last_activity_never_is_null():
    server = Server("fresh").run(7, 8000)
    server.last_activity = None
    assert running_servers(Supervisor(server))[0]["last_activity"] is None


def test_deleted_is_204_without_a_body(sup):
    assert local_page(Local("deleted"), sup, "/") == (204, b"", b"text/plain")


def test_icon_is_the_file_with_its_type(sup, icon):
    assert local_page(Local("icon", b"lab"), sup, "/") == (200, open(icon, "rb").read(), b"image/svg+xml")


def test_icon_whose_file_is_gone_or_whose_server_is_gone_is_the_standard_404(sup, icon, tmp_path):
    import os

    os.unlink(icon)
    assert local_page(Local("icon", b"lab"), sup, "/") is None
    assert local_page(Local("icon", b"nosuch"), sup, "/") is None


def test_icon_of_unknown_type_is_octet_stream(tmp_path):
    path = tmp_path / "icon.weird-extension"
    path.write_bytes(b"\x00\x01")
    sup = Supervisor(Server("w", launcher_entry={"icon_path": str(path)}))
    assert local_page(Local("icon", b"w"), sup, "/") == (200, b"\x00\x01", b"application/octet-stream")


def test_other_local_pages_are_not_ours(sup):
    assert local_page(Local("index"), sup, "/") is None
