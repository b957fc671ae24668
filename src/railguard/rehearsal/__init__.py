"""Issue 17: the pre-deploy snapshot, the rehearsal and the data rollback that join deploys and data."""
