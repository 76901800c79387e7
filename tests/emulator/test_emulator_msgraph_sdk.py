"""Microsoft's own Graph SDK (msgraph-sdk + azure-identity), unchanged, pointed at the emulator."""
from __future__ import annotations

import asyncio
import uuid

import httpx
from azure.identity import ClientSecretCredential
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.assigned_license import AssignedLicense
from msgraph.generated.models.password_profile import PasswordProfile
from msgraph.generated.models.user import User
from msgraph.generated.users.item.assign_license.assign_license_post_request_body import (
    AssignLicensePostRequestBody,
)
from msgraph_core import GraphClientFactory

from .emulator_world import BASIC_SKU_ID, STRONG_PASSWORD, World


def _sdk_client(world: World) -> tuple[GraphServiceClient, ClientSecretCredential, httpx.AsyncClient]:
    credential = ClientSecretCredential(
        world.tenant_id, world.client_id, world.client_secret, authority=world.emulator.url,
        disable_instance_discovery=True, connection_verify=world.emulator.ca_path)
    auth = AzureIdentityAuthenticationProvider(credential, scopes=["https://graph.microsoft.com/.default"],
                                               allowed_hosts=["127.0.0.1"])
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=world.emulator.ssl_context()))
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = f"{world.emulator.url}/v1.0"
    return GraphServiceClient(request_adapter=adapter), credential, http


async def _scenario(world: World) -> None:
    client, credential, http = _sdk_client(world)
    try:
        users = await client.users.get()
        assert users is not None and [u.user_principal_name for u in users.value or []] == ["existing@contoso.com"]
        domains = await client.domains.get()
        assert domains is not None and {d.id for d in domains.value or []} >= {"contoso.com"}
        skus = await client.subscribed_skus.get()
        assert skus is not None and skus.value
        prepaid = skus.value[0].prepaid_units
        assert str(skus.value[0].sku_id) == BASIC_SKU_ID and prepaid is not None and prepaid.enabled == 3

        created = await client.users.post(User(
            account_enabled=True, display_name="Sdk User", mail_nickname="sdk", user_principal_name="sdk@contoso.com",
            usage_location="NL", password_profile=PasswordProfile(password=STRONG_PASSWORD,
                                                                   force_change_password_next_sign_in=True)))
        assert created is not None and created.id
        licensed = await client.users.by_user_id(created.id).assign_license.post(AssignLicensePostRequestBody(
            add_licenses=[AssignedLicense(sku_id=uuid.UUID(BASIC_SKU_ID), disabled_plans=[])], remove_licenses=[]))
        assert licensed is not None and licensed.id == created.id
    finally:
        await http.aclose()
        credential.close()


def test_msgraph_sdk_lists_creates_and_licenses(world: World) -> None:
    asyncio.run(_scenario(world))
    tenant = world.emulator.tenant(world.tenant_id)
    sdk_user = next(u for u in tenant["users"] if u["userPrincipalName"] == "sdk@contoso.com")
    assert sdk_user["assignedLicenses"] == [{"disabledPlans": [], "skuId": BASIC_SKU_ID}]
    assert tenant["skus"][0]["consumed"] == 1
