# frozen_string_literal: true

module Walden
  # The steps each recipe takes for a given host state, in order. Recipes
  # turn each step into resources; the specs check the lists.
  module Plan
    module_function

    def steps(recipe, state, accept_unrestorable: false)
      case recipe
      when :default then default(state)
      when :migrate then migrate(state)
      when :rollback then rollback(state, accept_unrestorable: accept_unrestorable)
      else raise ArgumentError, "unknown recipe #{recipe.inspect}"
      end
    end

    # WALDEN_COMPRESSION defaults to lzo (WAL-E can read it) when migrating
    # and for as long as the WAL-E virtualenv is kept for a rollback.
    def lzo_default?(recipe, state)
      return true if recipe == :migrate

      state.aside ? true : false
    end

    # A host still running WAL-E needs the migration, not two archivers.
    def default(state)
      if state.wal_e_active?
        raise ConfigError, "WAL-E is still set up on this host (#{evidence(state)}); " \
                           'use recipe walden::migrate_from_wal_e instead of walden::default'
      end
      %i[install_package write_envdir start_agent]
    end

    # The order of issue 6: check, install, cron, virtualenv and link, agent.
    # `walden check` needs the binary, so on a host without walden the
    # package comes first; installing starts nothing and touches no WAL-E
    # file. The check runs only while WAL-E is still active: once cut over,
    # a failing store must not block converging the rest.
    def migrate(state)
      refuse_conflict!(state)
      steps = state.wal_e_active? ? checked_install(state) : %i[install_package]
      steps << :write_envdir
      steps.push(:save_cron, :remove_cron) if state.cron_entry
      steps << :move_venv_aside if state.wal_e_venv
      steps.push(:link_wal_e, :start_agent)
    end

    # Reverses migrate. The envdir stays as it is: WAL-E ignores walden's
    # variables, and a later migration finds its settings in place.
    def rollback(state, accept_unrestorable: false)
      refuse_conflict!(state)
      refuse_no_wal_e!(state)
      refuse_unrestorable!(state) unless accept_unrestorable
      steps = state.walden_installed ? %i[stop_agent] : []
      steps << :remove_link if state.aside && state.install_exists
      steps << :restore_venv if state.aside
      steps << :restore_cron
    end

    def checked_install(state)
      state.walden_installed ? %i[check install_package] : %i[install_package check]
    end

    def refuse_no_wal_e!(state)
      return if state.wal_e_venv || state.aside

      raise ConfigError, 'no WAL-E virtualenv on this host (neither the original path nor the one ' \
                         'migration moves it to), so a rollback cannot leave a host WAL-E runs'
    end

    def refuse_conflict!(state)
      return unless state.kind == :conflict

      raise ConfigError, 'both a WAL-E virtualenv and its moved-aside copy exist; decide by hand which ' \
                         'one to keep (was the WAL-E recipe left in the run list?)'
    end

    # WAL-E reads only lzo; anything else walden wrote would be lost to it.
    def refuse_unrestorable!(state)
      compression = state.compression || 'lz4'
      return unless state.walden_ran? && compression != Config::WAL_E_COMPRESSION

      raise ConfigError, "walden has been writing with WALDEN_COMPRESSION=#{compression}, which WAL-E " \
                         'cannot restore; after a rollback those backups and WAL segments are usable only ' \
                         "with walden. To roll back anyway set node['walden']['rollback']['accept_unrestorable'] = true"
    end

    def evidence(state)
      found = []
      found << 'a WAL-E virtualenv' if state.wal_e_venv
      found << "the cron entry '#{state.cron_entry.name}'" if state.cron_entry
      found.join(' and ')
    end
  end
end
