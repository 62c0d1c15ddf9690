from fabula_billing.models import Base
from fabula_billing.settings import Settings
from fabula_common.migrations import run_env

run_env(Base.metadata, Settings())
