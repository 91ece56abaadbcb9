output "app_settings" {
  value       = local.app_settings
  sensitive   = true # carries the Application Insights connection string
  description = "Every app setting of the function app, by name."
}
