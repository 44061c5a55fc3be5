"""Tasks: one small module each, implementing :class:`texttune.tasks.base.Task`."""

from texttune.tasks.base import Task
from texttune.tasks.registry import TASKS, task_class

__all__ = ["TASKS", "Task", "task_class"]
