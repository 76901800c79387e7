"""All models, imported here so metadata (and Alembic) sees every table."""
from shared.db.models.auth import ApiKey, AuditEvent, IdempotentAnswer
from shared.db.models.base import Base
from shared.db.models.customers import (
    Agreement,
    Customer,
    CustomerService,
    PlanEnablement,
    TenantConnection,
    TenantSku,
)
from shared.db.models.notifications import NotificationRecipients
from shared.db.models.outbox import OutboxMessage
from shared.db.models.plans import CustomerPlan, UserPlan, UserPlanLicence
from shared.db.models.providers import ProviderCustomerPlan, ProviderService, ProviderUserPlan, ServiceProvider
from shared.db.models.purchases import Purchase, PurchasePolicy
from shared.db.models.requests import ProvisioningRequest, RequestStep
from shared.db.models.secrets import RequestSecret
from shared.db.models.sync import SyncPolicy, SyncRun
from shared.db.models.users import SeatHold, SeatReservation, User, UserService

__all__ = [
    "Agreement", "ApiKey", "AuditEvent", "Base", "Customer", "CustomerPlan", "CustomerService",
    "IdempotentAnswer", "NotificationRecipients", "OutboxMessage", "PlanEnablement", "ProviderCustomerPlan",
    "ProviderService", "ProviderUserPlan", "ProvisioningRequest",
    "Purchase", "PurchasePolicy",
    "RequestSecret", "RequestStep", "SeatHold",
    "SeatReservation", "ServiceProvider", "SyncPolicy", "SyncRun", "TenantConnection", "TenantSku", "User",
    "UserPlan", "UserPlanLicence", "UserService",
]
