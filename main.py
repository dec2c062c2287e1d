"""The three Cloud Functions entry points: thin wiring over the measure package.

    receive  HTTP        the webhook: validate, publish to measure-events, answer 202
    send     CloudEvent  one signed delivery attempt per measure-events message
    sweep    HTTP        re-send due retries from measure-retry-sweeper (Cloud Scheduler)
"""

import functions_framework

from measure import logs, runtime

runtime.start()


@functions_framework.http
@logs.traced
def receive(request):
    return runtime.webhook().handle(request)


@functions_framework.cloud_event
def send(cloud_event):
    runtime.sender().handle(cloud_event)


@functions_framework.http
@logs.traced
def sweep(request):
    return runtime.sweeper().handle(request)
