"""The admin API's models and its OpenAPI document.

``base`` (strict body parsing, the error shape), ``bodies`` (what each endpoint takes),
``answers`` (what handlers build beside registry records), ``route_table`` (one entry per
endpoint: role, body, answers, refusals, If-Match/ETag) and ``document`` (the OpenAPI 3.1
document made of them).
"""
