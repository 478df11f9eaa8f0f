# An ALB in front of StreamHub instances (target type instance or ip).
# The server's keep-alive idle timeout (75 s) is above the ALB's (60 s); readiness is
# /readyz, which answers 503 from SIGTERM on while the node drains.

variable "vpc_id" { type = string }
variable "public_subnet_ids" { type = list(string) }
variable "certificate_arn" { type = string }
variable "security_group_ids" { type = list(string) }

resource "aws_lb" "streamhub" {
  name               = "streamhub"
  load_balancer_type = "application"
  subnets            = var.public_subnet_ids
  security_groups    = var.security_group_ids
  idle_timeout       = 60
}

resource "aws_lb_target_group" "streamhub" {
  name                 = "streamhub"
  port                 = 8080
  protocol             = "HTTP"
  vpc_id               = var.vpc_id
  deregistration_delay = 15

  health_check {
    path                = "/readyz"
    interval            = 5
    timeout             = 2
    healthy_threshold   = 2
    unhealthy_threshold = 2
    matcher             = "200"
  }

  # WebSocket clients stay on the node they joined until it drains (close 1001).
  stickiness {
    type    = "lb_cookie"
    enabled = false
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.streamhub.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.streamhub.arn
  }
}

output "dns_name" { value = aws_lb.streamhub.dns_name }
