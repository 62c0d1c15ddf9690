from fabula_common.migrations import run_env
from fabula_media.models import Base
from fabula_media.settings import Settings

run_env(Base.metadata, Settings())
