"""Long-form jobs: a book or a long text rendered in the background, durable across restarts (see `manager`)."""

from .manager import JobCancelled, JobManager, JobNotFound, jobs_for
from .source import Chapter, read_input

__all__ = ["Chapter", "JobCancelled", "JobManager", "JobNotFound", "jobs_for", "read_input"]
