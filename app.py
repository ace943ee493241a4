"""The Storefront Chalice app: wiring only. Routes and handlers live in chalicelib/entrypoints."""

from chalice.app import Chalice

from chalicelib.entrypoints import order_events, orders_api, products_api, saga_steps
from chalicelib.entrypoints import image_events, images_api
from chalicelib.entrypoints import cleanup_events, import_events, imports_api
from chalicelib.entrypoints import docs_api
from chalicelib.entrypoints import sales_api, sales_events, stream_events
from chalicelib.entrypoints.cors import add_preflight_routes
from chalicelib.entrypoints.middleware import event_middleware, http_middleware

app = Chalice(app_name="storefront")
app.register_middleware(http_middleware, "http")
for event_type in ("sqs", "sns", "scheduled", "cloudwatch", "pure_lambda"):
    app.register_middleware(event_middleware, event_type)
app.register_blueprint(products_api.api)
app.register_blueprint(orders_api.api)
app.register_blueprint(order_events.events)
app.register_blueprint(saga_steps.steps)
app.register_blueprint(images_api.api)
app.register_blueprint(image_events.events)
app.register_blueprint(imports_api.api)
app.register_blueprint(import_events.events)
app.register_blueprint(cleanup_events.events)
app.register_blueprint(stream_events.streams)
app.register_blueprint(sales_events.read_side)
app.register_blueprint(sales_api.api)
app.register_blueprint(docs_api.api)
add_preflight_routes(app)  # last: one OPTIONS route per path registered above

# Lambda calls each event handler as "app.<name>" (infra/package.py points it here): loading this
# module registers every blueprint, and with it the middleware, which a blueprint's module imported
# alone (Chalice's own handler string, "chalicelib.entrypoints.order_events.consume_orders") lacks.
globals().update({source.name: app.handler_map[source.name] for source in app.event_sources})
globals().update({function.name: app.handler_map[function.name] for function in app.pure_lambda_functions})
