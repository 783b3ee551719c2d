"""Local development tooling: a real DynamoDB API (moto's server) with the tables that
template.yaml declares, used by the tests and by the local stack."""
