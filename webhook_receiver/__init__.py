"""Flask app receiving Resend's Svix-signed webhooks."""
