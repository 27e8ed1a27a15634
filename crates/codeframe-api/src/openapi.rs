//! The OpenAPI 3 document, generated from the same route table as the router.

use serde_json::{Map, Value, json};

use crate::routes::route_table;

fn parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let schema = if name == "agent" {
                json!({"type": "string"})
            } else {
                json!({"type": "integer", "format": "int64"})
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

/// The document served at `/api/openapi.json`.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for (spec, _) in route_table() {
        let mut params = parameters(spec.path);
        if spec.agent_write {
            params.push(json!({
                "name": "Codeframe-Permit", "in": "header", "required": false,
                "description": "The permit this write is made under: lets it through while a pause drains",
                "schema": {"type": "integer", "format": "int64"}
            }));
        }
        let mut op = json!({
            "operationId": spec.operation,
            "summary": spec.summary,
            "parameters": params,
            "responses": {
                spec.success.to_string(): {"description": "success"},
                "default": {
                    "description": "error",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                }
            }
        });
        if spec.body {
            op["requestBody"] = json!({
                "required": false,
                "content": {"application/json": {"schema": {"type": "object"}}}
            });
        }
        if spec.auth {
            op["security"] = json!([{"bearer": []}]);
        }
        let entry = paths.entry(spec.path.to_owned()).or_insert_with(|| json!({}));
        entry[spec.method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "codeframe", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Pause, checkpoint and resume coding-agent projects."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {
                        "type": "object",
                        "required": ["code", "message", "details"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "details": {"type": "object"}
                        }
                    }}
                }
            }
        }
    })
}
