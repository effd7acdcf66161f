"""The shop service: a third, differently stored service for the project's own tests — users
in a Cognito user pool, files in a versioned S3 bucket, orders in PostgreSQL (app.py)."""
