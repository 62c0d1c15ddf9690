"""How an identity provider is configured (USERS_OIDC_PROVIDERS_JSON)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class ProviderConfig(BaseModel):
    """An OpenID Connect provider (give `issuer`: its endpoints and keys come
    from its discovery document) or a plain OAuth 2 one without ID tokens,
    such as GitHub (give `authorize_url`, `token_url` and `userinfo_url`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    display_name: str = ""
    scopes: str = "openid email profile"
    issuer: str | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    userinfo_url: str | None = None
    # Plain OAuth 2 only: where the account's addresses and whether each is
    # verified are listed (GitHub's /user/emails), when userinfo does not say.
    emails_url: str | None = None
    # The userinfo field naming the user at the provider ("id" on GitHub).
    subject_field: str = "sub"

    @property
    def is_oidc(self) -> bool:
        return self.issuer is not None

    @model_validator(mode="after")
    def _oidc_or_endpoints(self) -> ProviderConfig:
        if self.issuer is None and not (
            self.authorize_url and self.token_url and self.userinfo_url
        ):
            raise ValueError(
                "an identity provider needs an issuer (OpenID Connect) or authorize_url, "
                "token_url and userinfo_url (plain OAuth 2)"
            )
        return self
