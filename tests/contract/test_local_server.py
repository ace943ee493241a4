"""What the local API server answers outside the routes, as API Gateway would: the app's error shape."""

from __future__ import annotations

import pytest
import requests

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "PUT"])
def test_a_method_no_route_has_is_a_405_in_the_error_shape_not_an_html_501(stack, method):
    response = requests.request(method, f"{stack.endpoints['api']}/products", timeout=30)

    assert response.status_code == 405
    assert response.json()["Code"] == "MethodNotAllowedError"
    assert response.headers["X-Request-Id"]
