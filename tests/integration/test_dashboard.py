"""The Ray dashboard of a local cluster shows the mixserve applications, their
deployments and replicas by node, to a client that sends Ray's auth token, and refuses
one that does not (what `mixserve up` tells users)."""

from __future__ import annotations

import httpx

from orchestrator.settings import get_settings


def token() -> str:
    path = get_settings().ray_auth_token_path
    assert path is not None and path.is_file(), f"no Ray auth token at {path}"
    return path.read_text().strip()


def test_the_dashboard_shows_the_applications_by_node_to_a_client_with_the_token(service):
    url = service.dashboard_url
    assert url, "the local Ray started by the service has a dashboard"
    refused = httpx.get(f"{url}/api/serve/applications/", timeout=30)
    assert refused.status_code == 401
    resp = httpx.get(
        f"{url}/api/serve/applications/",
        headers={"authorization": f"Bearer {token()}"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text[:500]
    apps = resp.json()["applications"]
    main = apps[service.config.name]
    assert set(main["deployments"]) == {"gateway", "router", "retriever-docs"}
    engine = apps[f"{service.config.name}-engine-gemma"]["deployments"]["engine-gemma"]
    replicas = [r for r in engine["replicas"] if r["state"] == "RUNNING"]
    assert replicas and all(r["node_id"] and r["pid"] for r in replicas)
    gateways = [r for r in main["deployments"]["gateway"]["replicas"] if r["state"] == "RUNNING"]
    assert len(gateways) == 2  # two gateway replicas by default
