"""The call runtime: one ``CallRuntime`` per live call, all ticked by one media clock."""
