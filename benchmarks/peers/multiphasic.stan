// Hierarchical multiphasic CAR-T kinetic model: the Stan twin of carkin's population_model for
// models/multiphasic.toml (closed form, centred IIV, additive residual on the log scale, M3 for BLQ).
//
// Written for benchmarks/peers/stan_vs_carkin.py; it must compute the same log density as carkin
// (src/carkin/population/_model.py), constants included, so that log_prob(adjust_transform=False)
// can be compared number for number:
//   mu[k]      ~ Normal(prior_loc[k], prior_sd[k])          typical values, log/logit scale
//   omega[k]   ~ HalfNormal(omega_scale[k])                 IIV SDs (normal_lpdf + log 2 each)
//   beta[e]    ~ Normal(0, beta_sd[e])                      covariate coefficients
//   phi[i, k]  ~ Normal(mu[k] + sum_e Z[i, e] beta[e] M[e, k], omega[k])   centred IIV
//   sigma      ~ HalfNormal(sigma_scale)
//   quantified records: log DV ~ Normal(log C, sigma)
//   BLQ records (M3):   log Phi((log LLOQ - log C) / sigma)
// Parameter order (columns of phi): cmax, tmax, rho, beta, delta (log scale), fb (logit scale).
// alpha = beta + delta. log C is carkin's branch-free form (src/carkin/models/_multiphasic.py):
//   log C = log cmax + rho * min(t - tmax, 0)
//           + logaddexp(log(1 - fb) - alpha * max(t - tmax, 0), log(fb) - beta * max(t - tmax, 0))
// with log cmax = phi[, 1] (carkin computes log(exp(phi)), the same number), log(fb) = log_inv_logit(phi[, 6])
// and log(1 - fb) = log1m_inv_logit(phi[, 6]).
data {
  int<lower=1> N;                          // patients
  int<lower=0> E;                          // covariate coefficients
  matrix[N, E] Z;                          // standardised covariates, one column per coefficient
  matrix[E, 6] M;                          // one-hot: the parameter each coefficient acts on
  int<lower=1> R;                          // records
  array[R] int<lower=1, upper=N> patient;  // 1-based patient of each record
  vector[R] time;                          // days after infusion
  vector[R] log_dv;                        // log DV; log LLOQ for BLQ records
  int<lower=0> Q;                          // quantified records
  array[Q] int<lower=1, upper=R> quantified;
  int<lower=0> C;                          // BLQ (censored) records
  array[C] int<lower=1, upper=R> censored;
  vector[6] prior_loc;
  vector<lower=0>[6] prior_sd;
  vector<lower=0>[6] omega_scale;
  vector<lower=0>[E] beta_sd;
  real<lower=0> sigma_scale;
}
parameters {
  vector[6] mu;
  vector<lower=0>[6] omega;
  vector[E] beta;
  matrix[N, 6] phi;
  real<lower=0> sigma;
}
model {
  matrix[N, 6] loc = rep_matrix(mu', N) + diag_post_multiply(Z, beta) * M;
  target += normal_lpdf(mu | prior_loc, prior_sd);
  target += normal_lpdf(omega | 0, omega_scale) + 6 * log2();
  target += normal_lpdf(beta | 0, beta_sd);
  for (k in 1:6) {
    target += normal_lpdf(col(phi, k) | col(loc, k), omega[k]);
  }
  target += normal_lpdf(sigma | 0, sigma_scale) + log2();
  {
    // natural-scale parameters once per patient, then gathered per record
    vector[N] tmax = exp(col(phi, 2));
    vector[N] rho = exp(col(phi, 3));
    vector[N] b = exp(col(phi, 4));
    vector[N] alpha = b + exp(col(phi, 5));
    vector[N] log_fb = log_inv_logit(col(phi, 6));
    vector[N] log1m_fb = log1m_inv_logit(col(phi, 6));
    vector[R] log_pred;
    for (r in 1:R) {
      int i = patient[r];
      real dt = time[r] - tmax[i];
      real after = fmax(dt, 0);
      log_pred[r] = phi[i, 1] + rho[i] * fmin(dt, 0)
                    + log_sum_exp(log1m_fb[i] - alpha[i] * after, log_fb[i] - b[i] * after);
    }
    target += normal_lpdf(log_dv[quantified] | log_pred[quantified], sigma);
    if (C > 0) {
      target += std_normal_lcdf((log_dv[censored] - log_pred[censored]) / sigma);
    }
  }
}
