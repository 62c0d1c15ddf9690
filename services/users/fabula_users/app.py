"""Wiring of the users service process."""

from __future__ import annotations

from collections.abc import Callable

from fabula.users.v1 import users_pb2, users_pb2_grpc
from fabula_common.db import Database
from fabula_common.grpc_server import GrpcApp
from fabula_common.health import NATS, POSTGRES
from fabula_common.messaging.bus import EventBus
from fabula_common.messaging.outbox import OutboxRelay

from fabula_users.accounts.passwords import PasswordHashing
from fabula_users.accounts.service import UsersService
from fabula_users.accounts.servicer import UsersServicer
from fabula_users.accounts.tasks import ExpiredRecordsPurger
from fabula_users.admin.servicer import AdminServicer
from fabula_users.api_keys.servicer import ApiKeysServicer
from fabula_users.database import outbox
from fabula_users.identities.providers import IdentityProviders
from fabula_users.identities.service import IdentitiesService
from fabula_users.identities.servicer import IdentitiesServicer
from fabula_users.mail.sender import MailSender
from fabula_users.leaving.service import LeavingService
from fabula_users.leaving.servicer import LeavingServicer
from fabula_users.settings import Settings

SERVICE_NAME = users_pb2.DESCRIPTOR.services_by_name["UsersService"].full_name


class Servicer(
    UsersServicer, IdentitiesServicer, ApiKeysServicer, AdminServicer, LeavingServicer
):
    """UsersService: each domain package implements its own methods."""

    def __init__(
        self,
        db: Database,
        service: UsersService,
        identities: IdentitiesService,
        leaving: LeavingService,
        mail_queued: Callable[[], None],
    ) -> None:
        UsersServicer.__init__(self, db, service, mail_queued=mail_queued)
        IdentitiesServicer.__init__(self, db, identities)
        ApiKeysServicer.__init__(self, db)
        AdminServicer.__init__(self, db)
        LeavingServicer.__init__(self, db, leaving)


def create_app(settings: Settings) -> GrpcApp:
    app = GrpcApp("users", settings)
    db = Database(settings)
    bus = EventBus(settings, name="users")
    passwords = PasswordHashing(settings)
    service = UsersService(settings, passwords)
    providers = IdentityProviders(settings)
    identities = IdentitiesService(settings, providers, service)
    mail = MailSender(db, settings)
    leaving = LeavingService(settings, passwords)

    app.add_servicer(
        users_pb2_grpc.add_UsersServiceServicer_to_server,
        Servicer(db, service, identities, leaving, mail_queued=mail.wake),
        SERVICE_NAME,
    )
    app.add_worker(OutboxRelay(db, outbox, bus, "users", settings))
    app.add_worker(mail)
    app.add_worker(ExpiredRecordsPurger(db, service, settings.refresh_token_purge_interval_seconds))
    # Workers have stopped (the relay flushed) before these run.
    app.on_shutdown(bus.close)
    app.on_shutdown(passwords.close)
    app.on_shutdown(providers.close)
    app.on_shutdown(db.dispose)
    # Health: NOT_SERVING while the database is down; NATS down is reported
    # only (events wait in the outbox or the stream).
    app.watch_dependency(POSTGRES, db.ping)
    app.watch_dependency(NATS, bus.ping, required=False)
    return app
