"""Pure domain model: imports nothing from boto3 or httpx."""
