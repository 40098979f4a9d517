"""The compose files a user starts (docker-compose.yml, docker-compose.sharded.yml) are valid.

``docker compose config`` cannot run here: the docker CLI is installed but without its compose
plugin ("docker: unknown command: docker compose") and no engine runs. So this checks each file,
after YAML anchors and merge keys are resolved, against the Compose specification's structure:
the top-level and per-service keys the spec allows, an ``image`` or ``build`` per service,
``depends_on`` naming services with a known condition, healthchecks with spec keys only, named
volumes declared — and the sharded file's cluster shape (config server replica set, two shard
replica sets, mongos, a one-shot ``yidang mongo setup --sharded``, two API nodes through mongos).
(Checked once with compose-go v2.16.2's loader, the library behind ``docker compose config``: both
files load; see the issue 12 report.)
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FILES = ("docker-compose.yml", "docker-compose.sharded.yml")

TOP = {"version", "name", "services", "networks", "volumes", "secrets", "configs", "include"}
SERVICE = {
    "annotations", "attach", "build", "blkio_config", "cap_add", "cap_drop", "cgroup", "cgroup_parent", "command",
    "configs", "container_name", "cpu_count", "cpu_percent", "cpu_period", "cpu_quota", "cpu_rt_period",
    "cpu_rt_runtime", "cpu_shares", "cpus", "cpuset", "credential_spec", "depends_on", "deploy", "develop",
    "device_cgroup_rules", "devices", "dns", "dns_opt", "dns_search", "domainname", "entrypoint", "env_file",
    "environment", "expose", "extends", "external_links", "extra_hosts", "group_add", "healthcheck", "hostname",
    "image", "init", "ipc", "isolation", "labels", "links", "logging", "mac_address", "mem_limit", "mem_reservation",
    "mem_swappiness", "memswap_limit", "network_mode", "networks", "oom_kill_disable", "oom_score_adj", "pid",
    "pids_limit", "platform", "ports", "post_start", "pre_stop", "privileged", "profiles", "pull_policy",
    "read_only", "restart", "runtime", "scale", "secrets", "security_opt", "shm_size", "stdin_open",
    "stop_grace_period", "stop_signal", "storage_opt", "sysctls", "tmpfs", "tty", "ulimits", "user", "userns_mode",
    "uts", "volumes", "volumes_from", "working_dir",
}
"""Service properties of the Compose specification (compose-spec.json, ``definitions.service``)."""
HEALTHCHECK = {"disable", "interval", "retries", "test", "timeout", "start_period", "start_interval"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
RESTART = {"no", "always", "on-failure", "unless-stopped"}


def load(name: str) -> dict[str, Any]:
    found = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
    assert isinstance(found, dict)
    return found


def problems(doc: dict[str, Any]) -> list[str]:
    """What the Compose specification does not allow in ``doc`` (empty: valid)."""
    out = [f"top-level key {k!r}" for k in doc if k not in TOP and not str(k).startswith("x-")]
    services = doc.get("services")
    if not isinstance(services, dict) or not services:
        return [*out, "no services"]
    volumes = set(doc.get("volumes") or {})
    for name, svc in services.items():
        if not isinstance(svc, dict):
            out.append(f"service {name}: not a mapping")
            continue
        out += [f"service {name}: key {k!r}" for k in svc if k not in SERVICE and not str(k).startswith("x-")]
        if "image" not in svc and "build" not in svc:
            out.append(f"service {name}: neither image nor build")
        deps = svc.get("depends_on") or {}
        for dep, how in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
            if dep not in services:
                out.append(f"service {name}: depends on unknown service {dep!r}")
            if isinstance(how, dict) and how.get("condition", "service_started") not in CONDITIONS:
                out.append(f"service {name}: depends_on condition {how.get('condition')!r}")
        health = svc.get("healthcheck") or {}
        out += [f"service {name}: healthcheck key {k!r}" for k in health if k not in HEALTHCHECK]
        restart = str(svc.get("restart", "no"))
        if restart not in RESTART and not restart.startswith("on-failure:"):
            out.append(f"service {name}: restart {restart!r}")
        for mount in svc.get("volumes") or ():
            source = str(mount).split(":", 1)[0] if isinstance(mount, str) else str(mount.get("source", ""))
            if source and not source.startswith((".", "/", "~")) and source not in volumes:
                out.append(f"service {name}: volume {source!r} not declared")
        for port in svc.get("ports") or ():
            if not isinstance(port, str | int | dict):
                out.append(f"service {name}: port {port!r}")
        env = svc.get("environment")
        if env is not None and not isinstance(env, dict | list):
            out.append(f"service {name}: environment must be a mapping or list")
        cmd = svc.get("command")
        if cmd is not None and not (isinstance(cmd, str) or all(isinstance(c, str) for c in cmd)):
            out.append(f"service {name}: command must be a string or a list of strings")
    return out


@pytest.mark.parametrize("name", FILES)
def test_compose_file_follows_the_specification(name: str) -> None:
    assert problems(load(name)) == []


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d["services"]["mongos"].update(helthcheck={}), "key 'helthcheck'"),
    (lambda d: d["services"]["yidang1"]["depends_on"].update(mongo={"condition": "service_healthy"}),
     "unknown service 'mongo'"),
    (lambda d: d["services"]["setup"]["depends_on"]["mongos"].update(condition="healthy"), "condition 'healthy'"),
    (lambda d: d["volumes"].pop("shard2-data"), "'shard2-data' not declared"),
    (lambda d: d.update(service={}), "top-level key 'service'"),
], ids=["misspelt-key", "unknown-dependency", "bad-condition", "undeclared-volume", "bad-top-level"])
def test_the_check_catches_invalid_files(mutate: Any, expected: str) -> None:
    doc = copy.deepcopy(load("docker-compose.sharded.yml"))
    mutate(doc)
    assert any(expected in p for p in problems(doc)), problems(doc)


def test_sharded_file_is_a_cluster_of_two_shards_behind_mongos_with_two_api_nodes() -> None:
    services = load("docker-compose.sharded.yml")["services"]

    def command(name: str) -> list[str]:
        return list(services[name].get("command") or [""])

    config = [n for n in services if "--configsvr" in command(n)]
    shards = [n for n in services if "--shardsvr" in command(n)]
    routers = [n for n in services if command(n)[0] == "mongos"]
    assert len(config) == 1 and len(shards) == 2 and len(routers) == 1
    replica_sets = {command(n)[command(n).index("--replSet") + 1] for n in [*config, *shards]}
    assert len(replica_sets) == 3
    (cfg,) = config
    (mongos,) = routers
    cfg_set = command(cfg)[command(cfg).index("--replSet") + 1]
    assert command(mongos)[command(mongos).index("--configdb") + 1] == f"{cfg_set}/{cfg}:27017"
    for shard in shards:
        shard_set = command(shard)[command(shard).index("--replSet") + 1]
        assert f"sh.addShard('{shard_set}/{shard}:27017')" in services[mongos]["healthcheck"]["test"]
        assert services[mongos]["depends_on"][shard]["condition"] == "service_healthy"
    assert command("setup") == ["yidang", "mongo", "setup", "--sharded"]
    assert services["setup"]["depends_on"][mongos]["condition"] == "service_healthy"
    api = [n for n, s in services.items() if "setup" in (s.get("depends_on") or {})]
    assert len(api) == 2
    for node in api:
        assert services[node]["depends_on"]["setup"]["condition"] == "service_completed_successfully"
        assert services[node]["environment"]["YIDANG_MONGODB_URI"].startswith(f"mongodb://{mongos}:27017/")
    assert len({services[n]["ports"][0] for n in api}) == 2
