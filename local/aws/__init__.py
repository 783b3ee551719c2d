"""The AWS pieces the local stack emulates, one module each, all driven by template.yaml:

- `moto`, `moto_app`: moto's server as DynamoDB, DynamoDB Streams, SQS, S3 and SES;
- `lambda_runtime`: the Lambda Runtime API and execution environments that run each function's
  real binary, scaled out as Lambda does;
- `http_api`: API Gateway's HTTP API (payload format 2.0), with `jwt_authorizer` (its JWT
  authorizer and a local issuer);
- `stream_mapping` (with `event_filters`): the DynamoDB stream event source mapping;
- `queue_mapping`: the SQS event source mapping.

The developer's commands (`stack`, `show`, `event`, `watch`, `testenv`, `bench`) live one level up.
"""
