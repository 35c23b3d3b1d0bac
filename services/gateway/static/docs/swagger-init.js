// Starts Swagger UI on /docs. A file rather than an inline script: the page's policy runs only
// the gateway's own scripts. Same settings as FastAPI's default page, minus the CDN and the
// online validator (it would send the schema to another site).
"use strict";
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
