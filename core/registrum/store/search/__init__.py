"""Run search: the filter language parsed, planned and compiled to SQL, paged by cursor."""
