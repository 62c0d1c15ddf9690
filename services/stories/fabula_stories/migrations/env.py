from fabula_common.migrations import run_env
from fabula_stories.models import Base
from fabula_stories.settings import Settings

run_env(Base.metadata, Settings())
