"""ID tokens for local users of the embedded Cognito user pool (`make token`, the tests).

The pool only lets admins create users (as infra/resources.json says), so a user is created with
the admin API (with an `email` attribute, so the app's e-mail has somewhere to go: the local
stack's mailbox), given a fresh random password, and signed in with ADMIN_USER_PASSWORD_AUTH: the
ID token that comes back is a real pool token, verified by the app like any other. Nothing is
remembered between calls, which is what makes issuing a token for an existing user idempotent.
"""

from __future__ import annotations

import secrets
from typing import Any

__all__ = ["issue_token", "local_email"]


def _password() -> str:
    # token_urlsafe alone may lack a digit or a case; the suffix satisfies any Cognito policy.
    return f"{secrets.token_urlsafe(24)}Aa1!"


def local_email(username: str) -> str:
    """A local user's address: the username when it is one, else username@example.com (a domain
    reserved for examples: nothing is delivered there, even by mistake)."""
    return username if "@" in username else f"{username}@example.com"


def issue_token(cognito_client: Any, user_pool_id: str, client_id: str, username: str,
                email: str | None = None) -> str:
    """An ID token for `username`, creating the user if missing, with `email` (default
    `local_email(username)`) as its verified address; an existing user keeps the address it has.

    Each call resets the user's password, so two calls for one user at the same moment may race
    (the loser's sign-in fails with NotAuthorizedException). Raises botocore's ClientError.
    """
    try:
        cognito_client.admin_create_user(
            UserPoolId=user_pool_id, Username=username, MessageAction="SUPPRESS",
            UserAttributes=[{"Name": "email", "Value": email or local_email(username)},
                            {"Name": "email_verified", "Value": "true"}])
    except cognito_client.exceptions.UsernameExistsException:
        pass
    password = _password()
    cognito_client.admin_set_user_password(
        UserPoolId=user_pool_id, Username=username, Password=password, Permanent=True)
    result = cognito_client.admin_initiate_auth(
        UserPoolId=user_pool_id, ClientId=client_id, AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password})
    return str(result["AuthenticationResult"]["IdToken"])
