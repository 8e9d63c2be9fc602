"""The embedded default behind ``make run``: one process, no services needed."""

from config.settings.base import *  # noqa: F403
from config.settings.base import env

DEBUG = env.bool("DEBUG", True)
