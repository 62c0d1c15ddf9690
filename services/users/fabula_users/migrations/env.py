from fabula_common.migrations import run_env
from fabula_users.models import Base
from fabula_users.settings import Settings

run_env(Base.metadata, Settings())
