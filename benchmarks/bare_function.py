"""The ceiling for receive: a bare functions-framework HTTP function that reads the body and answers 202."""

import functions_framework


@functions_framework.http
def bare(request):
    request.get_data()
    return '{"accepted": 1}', 202, {"Content-Type": "application/json"}
