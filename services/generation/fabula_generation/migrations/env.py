from fabula_common.migrations import run_env
from fabula_generation.models import Base
from fabula_generation.settings import Settings

run_env(Base.metadata, Settings())
