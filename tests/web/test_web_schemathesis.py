"""Property-based API testing with schemathesis: no request built from the OpenAPI schema makes the server fail.

Every operation of ``/api/openapi.json`` receives generated requests (valid
and invalid bodies, queries and path values) from an administrator who owns
the example project, authenticated by API token; project paths point at that
project so the requests reach the real code. The only check is that no
response is a server error (5xx). Jobs are recorded, not run. Bounded to a
few hundred requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from web_support import SLUG, WebEnv, web_env

from knowdo.web.models import Membership, User
from knowdo.web.security import create_api_token

EXAMPLES = 12  # per operation: about 25 operations, about 300 requests in all


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebEnv, str]]:
    with web_env(Path(tmp_path_factory.mktemp("schemathesis"))) as env, env.db.session() as s:
        user = s.get(User, env.users["admin"])
        assert user is not None
        s.add(Membership(user_id=user.id, project_id=env.project_id, role="owner"))
        _, secret = create_api_token(s, user, "schemathesis")
        s.commit()
        yield env, secret


def test_api_never_answers_with_a_server_error(web: tuple[WebEnv, str]) -> None:
    env, secret = web
    api = schemathesis.openapi.from_asgi("/api/openapi.json", env.app)
    operations = [result.ok() for result in api.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 20
    headers = {"Authorization": f"Bearer {secret}"}
    calls: list[str] = []

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:
            if case.path_parameters and "slug" in case.path_parameters:
                case.path_parameters["slug"] = SLUG
            calls.append(f"{case.method} {case.path}")
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        run()
    assert len(calls) >= len(operations)
