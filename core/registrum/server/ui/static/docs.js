// Starts Swagger UI on /docs. An external script, so the page's Content-Security-Policy
// needs no inline script; the OpenAPI address comes from the page.
const root = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  presets: [SwaggerUIBundle.presets.apis],
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  // The default validator badge is an image from validator.swagger.io: nothing leaves
  // this origin.
  validatorUrl: null,
});
