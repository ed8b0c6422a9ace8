"""The data layer: two primitives (the DynamoDB table, the S3 bucket) and one small module per aggregate.

`table` and `objects` own every boto3 call; `files`, `batches`, `segments`, `jobs`, `tenants`, `uploads`
each know one aggregate's items and turn its failed conditional writes into domain errors.
`batchline.store.Store` composes them.
"""
