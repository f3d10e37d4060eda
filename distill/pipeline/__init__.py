"""The pipeline: recipe schema, resumable stages, the runner that chains them, the report."""
