"""The data layer: two primitives (the DynamoDB table, the S3 bucket) and one small module per aggregate.

`dynamodb` and `objects` own every boto3 call; `table` addresses the table's objects by kind and id,
`items` is its schema, `transactions` builds its transactions from named actions, and `contention` says
when a refused write may pass later. `files`, `batches` (with `batch_reads`), `segments`, `jobs`,
`tenants`, `uploads`, `budgets` and `rates` each know one aggregate's items and turn its failed conditional
writes into domain errors; `worker_reads` reads several at once. `batchline.store.Store` composes them, and
nothing else reaches the table (tests/unit/test_data_sealed.py).
"""
